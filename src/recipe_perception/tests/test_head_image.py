"""The head camera's outputs: the policy image and its segmented variant (table and beyond removed)."""

import numpy as np

from recipe_common.cameras import HEAD, camera_table
from recipe_common.policy_image import PolicyImageSpec
from recipe_perception.head_image import HeadDepth

K = camera_table()[HEAD].stream
SPEC = PolicyImageSpec.for_camera()


def _tilted_table(k):
    """A table plane seen from above at 50 degrees (depth grows toward the image top), plus a box."""
    v = (np.arange(k.height) - k.cy) / k.fy
    depth = np.repeat(
        (0.55 / (np.cos(np.radians(50)) + v * np.sin(np.radians(50)) + 0.2))[:, None], k.width, 1
    )
    depth = depth.astype(np.float32)
    depth[200:300, 380:470] -= 0.08  # something standing 8 cm proud of the table
    return depth


def test_segmented_keeps_only_what_stands_on_the_table():
    head = HeadDepth(SPEC, min_height_m=0.02)
    img = head.policy_image(_tilted_table(K), K)
    seg = head.segmented(img)
    assert img.shape == seg.shape == (84, 84)
    kept = seg < SPEC.far_m
    assert 0.02 < kept.mean() < 0.15  # the box only
    assert np.allclose(seg[kept], img[kept])
    rows, cols = np.nonzero(kept)
    assert 30 < rows.mean() < 55 and 35 < cols.mean() < 55


def test_segmented_without_a_plane_is_empty():
    head = HeadDepth(SPEC)
    seg = head.segmented(np.full((84, 84), SPEC.far_m, np.float32))
    assert np.all(seg == SPEC.far_m)
