"""The debug image: what perception saw and decided, as one rgb8 picture (half the depth resolution).

Depth in grey (near bright), the robot's own pixels (self-filter) tinted blue, the target mask green, the
estimated centre as a red cross (white while OCCLUDED), the status in the corner.
"""

from __future__ import annotations

import cv2
import numpy as np

from recipe_common.cameras import Intrinsics
from recipe_perception.depth_segmenter import downsample_depth, resize_nearest
from recipe_perception.extrinsics import CameraExtrinsics
from recipe_perception.pipeline import ObjectEstimate
from recipe_perception.tracking import TrackStatus

NEAR_M, FAR_M = 0.3, 2.5


def debug_image(
    depth_m: np.ndarray,
    k: Intrinsics,
    est: ObjectEstimate,
    ext: CameraExtrinsics,
    robot: np.ndarray | None = None,
    scale: int = 2,
) -> np.ndarray:
    d = downsample_depth(depth_m, scale)
    h, w = d.shape
    x = np.clip((np.nan_to_num(d, nan=FAR_M) - NEAR_M) / (FAR_M - NEAR_M), 0.0, 1.0)
    grey = (255 * (1.0 - x)).astype(np.uint8)
    img = np.repeat(grey[..., None], 3, axis=2)
    if robot is not None and robot.shape == (h, w):
        img[robot] = (0.5 * img[robot] + [0, 0, 127]).astype(np.uint8)
    if est.mask is not None:
        m = resize_nearest(est.mask.astype(np.uint8), (h, w)).astype(bool)
        img[m] = (0.4 * img[m] + [0, 150, 0]).astype(np.uint8)
    if est.position is not None:
        pc = ext.from_parent(est.position)
        if pc[2] > 0:
            kk = k.scaled(w, h)
            u, v = kk.fx * pc[0] / pc[2] + kk.cx, kk.fy * pc[1] / pc[2] + kk.cy
            colour = (255, 0, 0) if est.status == TrackStatus.TRACKING else (255, 255, 255)
            cv2.drawMarker(img, (round(u), round(v)), colour, cv2.MARKER_CROSS, 14, 2)
    cv2.putText(
        img,
        f"{est.status.name} {est.confidence:.2f}",
        (6, 16),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (255, 255, 0),
        1,
        cv2.LINE_AA,
    )
    return img
