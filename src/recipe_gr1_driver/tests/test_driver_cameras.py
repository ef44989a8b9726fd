"""cameras.py: realsense-style 16UC1 millimetres and intrinsics."""

import numpy as np
import pytest

from recipe_gr1_driver.cameras import depth_m_to_mm, intrinsics


def test_depth_in_mm_with_zero_for_invalid():
    d = np.array([[0.5, 1.2345, np.nan], [-1.0, 0.0, 20.0]], dtype=np.float32)
    mm = depth_m_to_mm(d, max_m=10.0)
    assert mm.dtype == np.uint16
    assert mm.tolist() == [[500, 1234, 0], [0, 0, 0]] or mm.tolist() == [[500, 1235, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="2-D"):
        depth_m_to_mm(np.zeros(3))


def test_intrinsics_matrices():
    w, h, k, p = intrinsics({"width": 640, "height": 480, "fx": 600.0, "fy": 601.0, "cx": 320.0, "cy": 240.0})
    assert (w, h) == (640, 480)
    assert k == [600.0, 0.0, 320.0, 0.0, 601.0, 240.0, 0.0, 0.0, 1.0]
    assert p[:4] == [600.0, 0.0, 320.0, 0.0] and p[10] == 1.0
    with pytest.raises(ValueError, match="missing"):
        intrinsics({"width": 1})
