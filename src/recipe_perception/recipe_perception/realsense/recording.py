"""Synthesise a RealSense recording (the file format ``rs.recorder`` writes and playback reads).

pyrealsense2 2.59's recorder writes rosbag2 SQLite files (``.db3``); older releases wrote ROS1 ``.bag``
files, and playback reads both. The streams come from a ``software_device`` with the intrinsics,
extrinsics and serial number a D435 reports, so a test (or a user without a camera) gets a recording
that the ingest node plays exactly like one made with the RealSense Viewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recipe_common.cameras import Intrinsics


def _rs_intrinsics(rs: object, k: Intrinsics) -> object:
    i = rs.intrinsics()  # type: ignore[attr-defined]
    i.width, i.height = k.width, k.height
    i.fx, i.fy, i.ppx, i.ppy = k.fx, k.fy, k.cx, k.cy
    i.model = rs.distortion.brown_conrady  # type: ignore[attr-defined]
    i.coeffs = [0.0] * 5
    return i


def write_recording(
    path: str | Path,
    depth_mm: Sequence[np.ndarray],
    depth_k: Intrinsics,
    color: Sequence[np.ndarray] | None = None,
    color_k: Intrinsics | None = None,
    fps: int = 30,
    serial: str = "000000000001",
    start_ms: float = 1000.0,
    depth_to_color_m: Sequence[float] = (0.015, 0.0, 0.0),
) -> Path:
    """Write ``depth_mm`` (uint16 frames) and optional ``color`` (rgb8 frames) as a recording at ``path``.

    Returns the path written (the recorder insists on ``.db3`` in pyrealsense2 >= 2.56).
    """
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"{path}: pyrealsense2's recorder writes .db3 files")
    if path.exists():
        path.unlink()
    if color is not None and (color_k is None or len(color) != len(depth_mm)):
        raise ValueError("colour frames need color_k and one frame per depth frame")
    dev = rs.software_device()
    dev.register_info(rs.camera_info.serial_number, serial)
    dev.register_info(rs.camera_info.name, "Intel RealSense D435 (synthetic)")
    dsens = dev.add_sensor("Stereo Module")
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = rs.stream.depth, 0, 0
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = depth_k.width, depth_k.height, fps, 2, rs.format.z16
    vs.intrinsics = _rs_intrinsics(rs, depth_k)
    dprof = dsens.add_video_stream(vs)
    dsens.add_read_only_option(rs.option.depth_units, 0.001)
    cprof = csens = None
    if color is not None:
        assert color_k is not None
        csens = dev.add_sensor("RGB Camera")
        cv = rs.video_stream()
        cv.type, cv.index, cv.uid = rs.stream.color, 0, 1
        cv.width, cv.height, cv.fps, cv.bpp, cv.fmt = color_k.width, color_k.height, fps, 3, rs.format.rgb8
        cv.intrinsics = _rs_intrinsics(rs, color_k)
        cprof = csens.add_video_stream(cv)
        ex = rs.extrinsics()
        ex.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        ex.translation = list(depth_to_color_m)
        dprof.register_extrinsics_to(cprof, ex)
    dev.create_matcher(rs.matchers.default if color is not None else rs.matchers.dlr_c)
    recorder = rs.recorder(str(path), dev)
    sync = rs.syncer()
    dsens.open(dprof)
    dsens.start(sync)
    if csens is not None:
        csens.open(cprof)
        csens.start(sync)
    try:
        for i, d in enumerate(depth_mm):
            d = np.ascontiguousarray(d, dtype=np.uint16)
            if d.shape != (depth_k.height, depth_k.width):
                raise ValueError(f"depth frame {i} is {d.shape}, expected {(depth_k.height, depth_k.width)}")
            ts = start_ms + 1000.0 * i / fps
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = d.tobytes(), 2, 2 * depth_k.width
            f.timestamp, f.domain, f.frame_number = ts, rs.timestamp_domain.hardware_clock, i
            f.profile = dprof.as_video_stream_profile()
            dsens.on_video_frame(f)
            if csens is not None and color is not None:
                c = np.ascontiguousarray(color[i], dtype=np.uint8)
                g = rs.software_video_frame()
                g.pixels, g.bpp, g.stride = c.tobytes(), 3, 3 * c.shape[1]
                g.timestamp, g.domain, g.frame_number = ts, rs.timestamp_domain.hardware_clock, i
                g.profile = cprof.as_video_stream_profile()
                csens.on_video_frame(g)
            sync.try_wait_for_frames(200)
    finally:
        dsens.stop()
        dsens.close()
        if csens is not None:
            csens.stop()
            csens.close()
        del recorder  # flushes and closes the file
    return path
