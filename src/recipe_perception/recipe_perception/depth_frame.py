"""Checking and decoding one depth frame (sensor_msgs/Image + CameraInfo fields), without ROS.

Everything a camera driver can get wrong becomes a ``FrameError`` whose message is the reason the node
logs and reports with a LOST/OCCLUDED status; nothing downstream ever sees a frame it cannot trust:

* encoding other than 16UC1/mono16 (millimetres, 0 = no reading, realsense2_camera's) or 32FC1 (metres,
  NaN/inf/0 = no reading, REP 117);
* a buffer whose size does not match height x step, or a step shorter than a row;
* a frame whose size differs from its CameraInfo, or a CameraInfo with a degenerate K;
* too few valid pixels (an all-zero or all-NaN frame: lens covered, projector off, USB hiccup).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recipe_common.cameras import Intrinsics

MM_ENCODINGS = ("16UC1", "mono16")
M_ENCODINGS = ("32FC1",)
ENCODINGS = MM_ENCODINGS + M_ENCODINGS


class FrameError(ValueError):
    """A depth frame that cannot be used; the message is the reason."""


@dataclass(frozen=True)
class DepthFrame:
    depth_m: np.ndarray  # (H, W) float32 metres, NaN where there is no reading
    intrinsics: Intrinsics
    stamp: float  # capture time, seconds (header.stamp)
    frame_id: str
    valid_fraction: float


def intrinsics_from_info(width: int, height: int, k: np.ndarray | list[float]) -> Intrinsics:
    """Intrinsics from CameraInfo fields; a FrameError for an empty or degenerate K."""
    kk = np.asarray(k, dtype=np.float64).reshape(-1)
    if kk.size != 9 or not np.all(np.isfinite(kk)):
        raise FrameError(f"camera_info K must be 9 finite numbers, got {kk.tolist()}")
    if width <= 0 or height <= 0:
        raise FrameError(f"camera_info size {width}x{height} is empty")
    if kk[0] <= 0 or kk[4] <= 0:
        raise FrameError(f"camera_info K has non-positive focal lengths fx={kk[0]}, fy={kk[4]}")
    return Intrinsics.from_k(kk, width, height)


def decode_depth(
    encoding: str,
    width: int,
    height: int,
    step: int,
    is_bigendian: bool,
    data: bytes,
    intrinsics: Intrinsics,
    min_valid_fraction: float = 0.05,
) -> tuple[np.ndarray, float]:
    """(float32 metres with NaN holes, valid fraction) from the fields of a sensor_msgs/Image."""
    if encoding not in ENCODINGS:
        raise FrameError(f"depth encoding {encoding!r} is not supported (expected one of {list(ENCODINGS)})")
    if (width, height) != (intrinsics.width, intrinsics.height):
        raise FrameError(
            f"depth image is {width}x{height} but its camera_info says {intrinsics.width}x{intrinsics.height}"
        )
    if width <= 0 or height <= 0:
        raise FrameError(f"depth image is empty ({width}x{height})")
    bpp = 2 if encoding in MM_ENCODINGS else 4
    if step < width * bpp:
        raise FrameError(f"depth image step {step} is shorter than a row ({width} x {bpp} bytes)")
    if len(data) != step * height:
        raise FrameError(f"depth image has {len(data)} bytes, expected height x step = {step * height}")
    if step % bpp:
        raise FrameError(f"depth image step {step} is not a multiple of the pixel size {bpp}")
    order = ">" if is_bigendian else "<"
    if bpp == 2:
        raw = np.frombuffer(data, dtype=np.dtype(order + "u2")).reshape(height, step // 2)[:, :width]
        depth = raw.astype(np.float32) * np.float32(0.001)
        depth[raw == 0] = np.nan
    else:
        raw32 = np.frombuffer(data, dtype=np.dtype(order + "f4")).reshape(height, step // 4)[:, :width]
        depth = raw32.astype(np.float32, copy=True)
        with np.errstate(invalid="ignore"):
            depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    valid = float(np.count_nonzero(np.isfinite(depth))) / depth.size
    if valid < min_valid_fraction:
        what = "all-zero/NaN" if valid == 0 else f"only {100 * valid:.1f}% valid"
        raise FrameError(f"depth frame has no usable depth ({what}; need >= {100 * min_valid_fraction:.0f}%)")
    return depth, valid
