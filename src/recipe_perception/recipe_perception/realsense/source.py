"""One RealSense camera, live or played back from a recording, as numpy frames; no ROS.

``RealSenseSource.open`` finds the device (by serial number) or the recording and starts its streams;
``read`` returns the next ``Frames`` (depth in millimetres, colour rgb8, depth aligned to colour) with a
timestamp in the host clock, or None at the end of a recording. Everything that goes wrong with a
camera is a ``SourceError`` whose message says what to check, so the node can report it and retry
instead of crashing:

* no device connected, a wrong serial number, several devices and no serial;
* frames that stop arriving (an unplugged cable, a USB reset);
* a recording that does not exist or has no depth stream.

Timestamps (``stamp_mode``): ``device`` uses the frame's own timestamp: in the host clock when the
camera runs with global time (the D435 default; realsense2_camera's ``global_time_enabled``), else the
device clock shifted to the host clock at the first frame. Played-back recordings default to ``now``:
the first frame gets the current time and the others keep their recorded spacing, so the stream looks
live to nodes that drop stale frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common.cameras import Intrinsics

STAMP_MODES = ("device", "now")
# Seconds without a frame, with the playback device still "playing", after which a recording counts as
# ended (a stuck or truncated file must not keep the node waiting for ever).
_PLAYBACK_STALL_S = 30.0


class SourceError(RuntimeError):
    """The camera or recording cannot deliver frames; the message says why and what to check."""


@dataclass
class Frames:
    """What one frame set brings that was not published yet: a new depth frame, a new colour frame, or both.

    A live D435's syncer pairs depth and colour taken together; a recording played as fast as it is read
    emits a set for every new frame of either stream, paired with the other stream's latest. Each frame is
    therefore reported once, with its own timestamp (consumers pair them by stamp, as they would
    realsense2_camera's topics).
    """

    depth_mm: np.ndarray | None  # (H, W) uint16, 0 = no reading
    depth_k: Intrinsics | None
    stamp_s: float  # host clock, seconds (the depth frame's, else the colour frame's)
    frame_number: int
    color: np.ndarray | None = None  # (H, W, 3) uint8 RGB
    color_k: Intrinsics | None = None
    color_stamp_s: float = 0.0
    aligned_mm: np.ndarray | None = None  # the new depth frame re-projected onto the colour image, uint16 mm


def connected_serials() -> list[str]:
    import pyrealsense2 as rs

    out = []
    for dev in rs.context().query_devices():
        try:
            out.append(dev.get_info(rs.camera_info.serial_number))
        except RuntimeError:
            out.append("?")
    return out


def _intrinsics(profile: Any) -> Intrinsics:
    i = profile.as_video_stream_profile().get_intrinsics()
    return Intrinsics(
        width=int(i.width),
        height=int(i.height),
        fx=float(i.fx),
        fy=float(i.fy),
        cx=float(i.ppx),
        cy=float(i.ppy),
    )


class RealSenseSource:
    def __init__(
        self,
        serial: str = "",
        playback: str = "",
        width: int = 848,
        height: int = 480,
        fps: int = 30,
        color: bool = True,
        align: bool = True,
        realtime: bool = True,
        loop: bool = False,
        stamp_mode: str | None = None,
        timeout_ms: int = 1000,
    ) -> None:
        if stamp_mode is not None and stamp_mode not in STAMP_MODES:
            raise ValueError(f"stamp_mode must be one of {list(STAMP_MODES)}, got {stamp_mode!r}")
        self.serial, self.playback = serial, playback
        self.width, self.height, self.fps = width, height, fps
        self.color, self.align, self.realtime, self.loop = color, align, realtime, loop
        self.stamp_mode = stamp_mode or ("now" if playback else "device")
        self.timeout_ms = timeout_ms
        self._pipe: Any = None
        self._align: Any = None
        self._scale_mm = 1.0
        self._offset: float | None = None
        self._last_number = -1
        self._last_color = -1
        self._stalled_since: float | None = None
        self.device_name = ""
        self.device_serial = ""

    @property
    def label(self) -> str:
        return f"recording {self.playback}" if self.playback else f"RealSense {self.serial or '(any)'}"

    def open(self) -> None:
        import pyrealsense2 as rs

        cfg = rs.config()
        if self.playback:
            if not Path(self.playback).is_file():
                raise SourceError(f"playback file {self.playback!r} does not exist")
            cfg.enable_device_from_file(self.playback, repeat_playback=self.loop)
        else:
            serials = connected_serials()
            if not serials:
                raise SourceError(
                    "no RealSense device connected (check the USB 3 cable and port; the D435 "
                    "shows in lsusb as 8086:0b07)"
                )
            if self.serial and self.serial not in serials:
                raise SourceError(f"no RealSense with serial {self.serial!r}; connected: {serials}")
            if not self.serial and len(serials) > 1:
                raise SourceError(
                    f"several RealSense devices connected ({serials}): set the serial of each camera"
                )
            cfg.enable_device(self.serial or serials[0])
            cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
            if self.color:
                cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        pipe = rs.pipeline()
        try:
            if self.playback:
                # Set the pace on the resolved device before it starts (the pipeline starts the device the
                # config resolved): started in real time and switched after, the frames played while a busy
                # host got to the switch were gone, and a rewind did not bring them back.
                cfg.resolve(pipe).get_device().as_playback().set_real_time(self.realtime)
            profile = pipe.start(cfg)
        except RuntimeError as exc:
            raise SourceError(f"{self.label}: cannot start the streams: {exc}") from None
        dev = profile.get_device()
        try:
            self.device_serial = dev.get_info(rs.camera_info.serial_number)
            self.device_name = dev.get_info(rs.camera_info.name)
        except RuntimeError:
            pass
        streams = {s.stream_type(): s for s in profile.get_streams()}
        if rs.stream.depth not in streams:
            pipe.stop()
            raise SourceError(f"{self.label} has no depth stream")
        scale = 0.001
        for sensor in dev.query_sensors():
            if sensor.supports(rs.option.depth_units):
                scale = float(sensor.get_option(rs.option.depth_units))
                break
        self._scale_mm = scale * 1000.0
        has_color = rs.stream.color in streams and self.color
        self._align = rs.align(rs.stream.color) if has_color and self.align else None
        self._pipe = pipe
        self._offset = None
        self._last_number = -1
        self._last_color = -1

    def read(self) -> Frames | None:
        """The next frame set; None when a recording has ended (an empty set while a starved playback has
        nothing new yet). SourceError when a device's frames stop coming."""
        import pyrealsense2 as rs

        if self._pipe is None:
            raise SourceError(f"{self.label} is not open")
        while True:
            ok, fs = self._pipe.try_wait_for_frames(self.timeout_ms)
            if not ok:
                if self.playback and not self.loop:
                    if self._playback_running():
                        # A starved playback thread (busy host), not the end of the file: nothing new
                        # yet; returning lets the caller check for a stop request before reading again.
                        return Frames(None, None, stamp_s=0.0, frame_number=self._last_number)
                    return None
                raise SourceError(
                    f"{self.label}: no frames for {self.timeout_ms} ms (cable unplugged or USB reset?)"
                )
            self._stalled_since = None
            depth = fs.get_depth_frame()
            color = fs.get_color_frame() if self.color else None
            d_num = int(depth.get_frame_number()) if depth else -1
            c_num = int(color.get_frame_number()) if color else -1
            new_depth = depth and d_num != self._last_number
            new_color = color and c_num != self._last_color
            if new_depth or new_color:
                break
        out = Frames(depth_mm=None, depth_k=None, stamp_s=0.0, frame_number=d_num)
        if new_depth:
            self._last_number = d_num
            out.depth_mm, out.depth_k = self._mm(depth), _intrinsics(depth.get_profile())
            out.stamp_s = self._stamp(depth, rs)
            if self._align is not None and color:
                aligned = self._align.process(fs).get_depth_frame()
                if aligned:
                    out.aligned_mm = self._mm(aligned)
        if new_color:
            self._last_color = c_num
            out.color = np.asanyarray(color.get_data()).copy()
            out.color_k = _intrinsics(color.get_profile())
            out.color_stamp_s = self._stamp(color, rs)
            if not new_depth:
                out.stamp_s = out.color_stamp_s
        return out

    def _playback_running(self) -> bool:
        """Whether the recording still has frames to play. The end of a recording is the playback
        device stopping, not a read timeout: on a busy host the playback thread can be starved longer
        than ``timeout_ms``, and reading that as the end lost the last frames. A recording that stays
        'playing' without a frame for ``_PLAYBACK_STALL_S`` is treated as ended."""
        import pyrealsense2 as rs

        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
        if now - self._stalled_since >= _PLAYBACK_STALL_S:
            return False
        try:
            status = self._pipe.get_active_profile().get_device().as_playback().current_status()
        except RuntimeError:
            return False
        return status != rs.playback_status.stopped

    def _mm(self, frame: Any) -> np.ndarray:
        raw = np.asanyarray(frame.get_data())
        if abs(self._scale_mm - 1.0) < 1e-9:
            return raw.astype(np.uint16, copy=True)
        return np.clip(np.rint(raw.astype(np.float64) * self._scale_mm), 0, 65535).astype(np.uint16)

    def _stamp(self, frame: Any, rs: Any) -> float:
        ts = float(frame.get_timestamp()) / 1000.0
        domain = frame.get_frame_timestamp_domain()
        host_clock = domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)
        if self.stamp_mode == "device" and host_clock:
            return ts
        if self._offset is None:
            self._offset = time.time() - ts
        return ts + self._offset

    def close(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.stop()
            except RuntimeError:
                pass
            self._pipe = None
