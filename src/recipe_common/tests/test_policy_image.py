"""to_policy_image: one function from any depth frame to the policy's depth input (units, crop,
resize, holes, clipping). The twin-vs-real-frame comparison is in recipe_perception's
tests/test_policy_image_twin.py."""

import numpy as np
import pytest

from recipe_common.cameras import HEAD, Intrinsics, camera_table
from recipe_common.policy_image import (
    PolicyImageSpec,
    crop_window,
    depth_in_metres,
    fill_holes,
    to_policy_image,
)

SPEC = PolicyImageSpec.for_camera()
D435 = camera_table()[HEAD].stream  # 848x480, the stream the policy image's FOV comes from


def test_spec_of_the_head_camera():
    assert (SPEC.width, SPEC.height) == (84, 84) and SPEC.fovy_deg == pytest.approx(D435.fovy_deg)
    k = SPEC.intrinsics()
    assert k.fx == k.fy and k.cx == pytest.approx(41.5)
    with pytest.raises(ValueError, match="fovy_deg"):
        PolicyImageSpec(84, 84, 190.0)
    with pytest.raises(ValueError, match="near_m < far_m"):
        PolicyImageSpec(84, 84, 58.0, near_m=2.0, far_m=1.0)


def test_the_d435_frame_is_cropped_to_its_central_square():
    u0, v0, u1, v1 = crop_window(D435, SPEC)
    assert (v0, v1) == pytest.approx((0.0, 480.0), abs=1e-6)
    assert (u0, u1) == pytest.approx((184.0, 664.0), abs=1e-6)
    wide = PolicyImageSpec(84, 84, 80.0)
    with pytest.raises(ValueError, match="does not cover the policy image's field of view"):
        crop_window(D435, wide)


def test_units_and_holes():
    mm = np.array([[0, 1000], [65535, 500]], np.uint16)
    m = depth_in_metres(mm)
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.0) and m[1, 1] == pytest.approx(0.5)
    f = depth_in_metres(np.array([[np.inf, -1.0], [0.7, np.nan]], np.float64))
    assert f.dtype == np.float32 and np.isnan(f[0]).all() and np.isnan(f[1, 1])
    with pytest.raises(ValueError, match="uint16 millimetres or float metres"):
        depth_in_metres(np.zeros((2, 2), np.int32))


def test_same_image_from_millimetres_metres_and_any_resolution():
    """A tilted plane seen at 848x480 (mm and m) and at 424x240: the same 84x84 image."""

    def plane(k: Intrinsics) -> np.ndarray:
        v = (np.arange(k.height) - k.cy) / k.fy
        return np.repeat((0.6 / (1.0 + 0.5 * v))[:, None], k.width, axis=1).astype(np.float32)

    half = D435.scaled(424, 240)
    a = to_policy_image(plane(D435), D435, SPEC)
    b = to_policy_image(np.round(plane(D435) * 1000).astype(np.uint16), D435, SPEC)
    c = to_policy_image(plane(half), half, SPEC)
    assert a.shape == (84, 84) and a.dtype == np.float32
    assert np.abs(a - b).max() < 0.001 and np.abs(a - c).max() < 0.004
    assert a[0, 0] > a[-1, 0]  # the top of the image looks farther along the tilted plane


def test_holes_are_filled_and_values_clipped():
    d = np.full((480, 848), 0.8, np.float32)
    d[200:260, 400:460] = np.nan  # a hole covering whole policy pixels
    d[:, :300] = 5.0  # beyond far (left part of the crop)
    d[0:30, 600:700] = 0.05  # nearer than near
    img = to_policy_image(d, D435, SPEC)
    assert np.all(np.isfinite(img)) and img.max() == SPEC.far_m and img.min() == SPEC.near_m
    assert img[40, 45] == pytest.approx(0.8)  # inside the hole: its neighbours' depth
    empty = to_policy_image(np.zeros((480, 848), np.uint16), D435, SPEC)
    assert np.all(empty == SPEC.far_m)  # no reading at all: far everywhere


def test_median_keeps_edges_sharp():
    """A step edge inside one footprint: the policy pixel takes one side's depth, never a depth between."""
    d = np.full((480, 848), 1.2, np.float32)
    d[:, 424:] = 0.6
    img = to_policy_image(d, D435, SPEC)
    assert all(min(abs(v - 0.6), abs(v - 1.2)) < 1e-6 for v in np.unique(img).tolist())


def test_fill_holes_and_size_mismatch():
    a = np.array([[1.0, np.nan, 3.0]])
    assert fill_holes(a)[0, 1] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="camera_info says 848x480"):
        to_policy_image(np.zeros((480, 640), np.uint16), D435, SPEC)
