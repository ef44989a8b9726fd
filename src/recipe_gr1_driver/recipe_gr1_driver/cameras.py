"""Depth frames as realsense2_camera publishes them, from float metres; pure numpy, no ROS.

realsense2_camera publishes ``depth/image_rect_raw`` as 16UC1 in millimetres with 0 meaning
"no reading"; the twin's far plane and anything beyond ``max_m`` become 0 the same way, so
downstream code cannot tell the twin from the camera by its invalid-pixel convention.
"""

from __future__ import annotations

import numpy as np

from recipe_common.cameras import Intrinsics


def depth_m_to_mm(depth_m: np.ndarray, max_m: float = 10.0) -> np.ndarray:
    """float metres (H, W) -> uint16 millimetres; non-finite, <= 0 or > max_m -> 0.

    Works in float32 (a 848x480 frame in ~1-2 ms) since it runs at camera rate in the driver.
    """
    d = np.asarray(depth_m, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth image must be 2-D (H, W), got shape {d.shape}")
    with np.errstate(invalid="ignore"):
        valid = (d > 0) & (d <= min(max_m, 65.535))  # NaN compares False: invalid
    mm = np.rint(np.where(valid, d, 0.0) * np.float32(1000.0))
    return mm.astype(np.uint16)


def intrinsics(info: dict) -> tuple[int, int, list[float], list[float]]:
    """(width, height, K row-major 9, P row-major 12) from a SimTwin.camera_info dict."""
    k = Intrinsics.from_dict(info)
    return k.width, k.height, k.k(), k.p()
