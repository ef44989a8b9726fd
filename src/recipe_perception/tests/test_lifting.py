import numpy as np
import pytest

from recipe_common.cameras import Intrinsics
from recipe_perception.lifting import (
    deproject,
    lift_mask_centroid,
    mask_centre,
    robust_depth,
)

K = Intrinsics(fx=400.0, fy=400.0, cx=320.0, cy=240.0, width=640, height=480)


def test_deproject_principal_point_is_on_axis():
    np.testing.assert_allclose(deproject(320, 240, 1.5, K), [0, 0, 1.5])
    np.testing.assert_allclose(deproject(420, 140, 2.0, K), [0.5, -0.5, 2.0])


def test_lift_recovers_a_known_point_through_an_extrinsic():
    # Camera 1 m above the base origin looking straight down: optical z -> base -z, optical x -> base x,
    # optical y -> base -y.
    cam_to_base = np.eye(4)
    cam_to_base[:3, :3] = np.diag([1.0, -1.0, -1.0])
    cam_to_base[:3, 3] = [0.0, 0.0, 1.0]
    depth = np.zeros((480, 640), np.float32)
    mask = np.zeros((480, 640), bool)
    mask[230:251, 410:431] = True  # centre (420, 240)
    depth[mask] = 0.8
    depth[240, 420] = 0.0  # a hole at the centre must not matter
    p = lift_mask_centroid(depth, mask, K, cam_to_base)
    np.testing.assert_allclose(p, [0.2, 0.0, 0.2], atol=1e-6)


def test_empty_mask_and_no_depth_give_none():
    depth = np.ones((10, 10), np.float32)
    assert mask_centre(np.zeros((10, 10), bool)) is None
    assert lift_mask_centroid(depth, np.zeros((10, 10), bool), K, np.eye(4)) is None
    mask = np.ones((10, 10), bool)
    assert robust_depth(np.full((10, 10), np.nan, np.float32), mask, (5, 5)) is None


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="fx"):
        Intrinsics(fx=0, fy=1, cx=0, cy=0, width=1, height=1)
    with pytest.raises(ValueError, match="same shape"):
        robust_depth(np.ones((4, 4)), np.ones((5, 5), bool), (1, 1))
    with pytest.raises(ValueError, match="4x4"):
        lift_mask_centroid(np.ones((4, 4)), np.ones((4, 4), bool), K, np.eye(3))
    with pytest.raises(ValueError, match="depth"):
        deproject(1, 1, float("nan"), K)
