"""Centroid lifting: a mask centre in the third-view image plus its depth reading -> a 3D point.

This is the recipe's sparse object feature (paper: "centre of the mask in the third-view image + its
depth reading -> 3D position"). Pure numpy so it is tested without cameras or ROS.
"""

from __future__ import annotations

import numpy as np

from recipe_common.cameras import Intrinsics


def mask_centre(mask: np.ndarray) -> tuple[float, float] | None:
    """Pixel centre (u, v) of a boolean mask, or None when the mask is empty."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    vs, us = np.nonzero(mask)
    if us.size == 0:
        return None
    return float(us.mean()), float(vs.mean())


def robust_depth(depth: np.ndarray, mask: np.ndarray, centre: tuple[float, float],
                 radius: int = 3) -> float | None:
    """Depth (m) at the mask centre: the median of valid masked pixels in a small window around it.

    A single pixel is often a hole (0) or a flying pixel on the object's edge in D435 depth, so the
    reading is the median of the valid masked depths near the centre, then of the whole mask.
    """
    if depth.shape != mask.shape:
        raise ValueError(f"depth {depth.shape} and mask {mask.shape} must have the same shape")
    u, v = round(centre[0]), round(centre[1])
    h, w = depth.shape
    win = (slice(max(v - radius, 0), min(v + radius + 1, h)),
           slice(max(u - radius, 0), min(u + radius + 1, w)))
    for d, m in ((depth[win], mask[win]), (depth, mask)):
        vals = d[m & np.isfinite(d) & (d > 0)]
        if vals.size:
            return float(np.median(vals))
    return None


def deproject(u: float, v: float, z: float, k: Intrinsics) -> np.ndarray:
    """Pixel (u, v) at depth z (m, along the optical axis) -> point in the camera optical frame."""
    if not np.isfinite(z) or z <= 0:
        raise ValueError(f"depth must be positive and finite, got {z}")
    return np.array([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z])


def lift_mask_centroid(
    depth: np.ndarray, mask: np.ndarray, k: Intrinsics, cam_to_base: np.ndarray
) -> np.ndarray | None:
    """Object position in the robot base frame from a mask and a depth image (metres).

    ``cam_to_base`` is the 4x4 transform of the camera optical frame (x right, y down, z forward)
    expressed in the base frame. Returns None when the mask is empty or has no valid depth.
    """
    t = np.asarray(cam_to_base, dtype=np.float64)
    if t.shape != (4, 4):
        raise ValueError(f"cam_to_base must be 4x4, got {t.shape}")
    c = mask_centre(mask)
    if c is None:
        return None
    z = robust_depth(depth, mask, c)
    if z is None:
        return None
    p = deproject(c[0], c[1], z, k)
    return t[:3, :3] @ p + t[:3, 3]
