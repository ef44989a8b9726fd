"""ROS 2 node ``realsense``: D435 frames from pyrealsense2 on realsense2_camera's topics (no realsense-ros).

Run: ``ros2 run recipe_perception realsense --ros-args --params-file config/perception.yaml`` (or
``-p playback:=recording.db3`` to play a recording instead of a device).

Per camera ``<name>`` under ``namespace`` (default ``/camera``), with frame timestamps from the device:

* ``<name>/depth/image_rect_raw`` (16UC1, mm) + ``depth/camera_info``;
* ``<name>/color/image_raw`` (rgb8) + ``color/camera_info`` (``enable_color``);
* ``<name>/aligned_depth_to_color/image_raw`` (16UC1, mm, on the colour image's pixels) +
  ``aligned_depth_to_color/camera_info`` (the colour intrinsics) (``align_depth``);
* ``/diagnostics``: one status per camera at 1 Hz (OK streaming / ERROR with the reason).

Each camera runs in its own thread. A missing camera, a wrong serial or an unplugged cable is an ERROR
status and a log line saying what to check; the thread retries every ``reconnect_period_s`` and the node
keeps running (no crash loop). The end of a recording is logged and reported, and the node stays up.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from recipe_common.cameras import CameraTopics, Intrinsics, camera_table
from recipe_common.ros.params import declare_fields
from recipe_common.ros.process import run_nodes
from recipe_perception.realsense.config import NODE_NAME, RealSenseConfig
from recipe_perception.realsense.source import Frames, RealSenseSource, SourceError


def frame_ids(ros_name: str) -> tuple[str, str]:
    """(depth, colour) optical frame ids: the camera table's frame_id for the twin's cameras."""
    for cam in camera_table().values():
        if cam.ros_name == ros_name:
            return cam.frame_id, cam.frame_id.replace("depth", "color")
    return f"{ros_name}_depth_optical_frame", f"{ros_name}_color_optical_frame"


def image_msg(arr: np.ndarray, encoding: str, stamp: Any, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding, msg.is_bigendian = encoding, 0
    a = np.ascontiguousarray(arr)
    msg.step = int(a.strides[0])
    msg.data = a.tobytes()
    return msg


def info_msg(k: Intrinsics, stamp: Any, frame_id: str) -> CameraInfo:
    ci = CameraInfo()
    ci.header.stamp, ci.header.frame_id = stamp, frame_id
    ci.width, ci.height, ci.distortion_model = k.width, k.height, "plumb_bob"
    ci.d = [0.0] * 5
    ci.k, ci.p = k.k(), k.p()
    ci.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    return ci


class CameraWorker:
    """One camera's thread: open, stream, and on any camera error report, wait and reopen."""

    def __init__(self, node: RealSenseNode, name: str, source: RealSenseSource) -> None:
        self.node, self.name, self.source = node, name, source
        cfg = node.cfg
        topics = CameraTopics.of(name, cfg.namespace)
        self.depth_frame, self.color_frame = frame_ids(name)
        # RELIABLE (BEST_EFFORT drops a third of 640x480 images here) with room for a burst: a recording
        # played as fast as it is read publishes faster than a subscriber takes the frames.
        q = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {
            "depth": node.create_publisher(Image, topics.depth, q),
            "depth_info": node.create_publisher(CameraInfo, topics.depth_info, q),
        }
        if cfg.enable_color:
            self.pubs["color"] = node.create_publisher(Image, topics.color, q)
            self.pubs["color_info"] = node.create_publisher(CameraInfo, topics.color_info, q)
            if cfg.align_depth:
                self.pubs["aligned"] = node.create_publisher(Image, topics.aligned_depth, q)
                self.pubs["aligned_info"] = node.create_publisher(CameraInfo, topics.aligned_depth_info, q)
        self.level, self.message = DiagnosticStatus.WARN, "starting"
        self.frames = 0
        self._color_k: Intrinsics | None = None
        self.errors = 0
        self.recent_errors: deque[str] = deque(maxlen=4)
        self.finished = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"realsense-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.source.close()

    def _status(self, level: int, message: str) -> None:
        changed = message != self.message
        self.level, self.message = level, message
        log = self.node.get_logger()
        if level == DiagnosticStatus.ERROR:
            self.errors += 1
            if not self.recent_errors or self.recent_errors[-1] != message:
                self.recent_errors.append(message)
            if changed:
                log.error(f"camera {self.name}: {message}")
            else:
                log.error(f"camera {self.name}: {message}", throttle_duration_sec=30.0)
        elif changed:
            log.info(f"camera {self.name}: {message}")

    def _run(self) -> None:
        period = self.node.cfg.reconnect_period_s
        while not self._stop.is_set():
            try:
                self.source.open()
            except SourceError as exc:
                self._status(DiagnosticStatus.ERROR, f"{exc}; retrying every {period:g} s")
                self._stop.wait(period)
                continue
            what = self.source.device_serial or self.source.playback
            self._status(DiagnosticStatus.OK, f"streaming from {self.source.label} ({what})")
            try:
                while not self._stop.is_set():
                    frames = self.source.read()
                    if frames is None:
                        self._status(
                            DiagnosticStatus.OK,
                            f"{self.source.label}: playback finished after {self.frames} frames",
                        )
                        self.finished = True
                        self.source.close()
                        return
                    self._publish(frames)
            except SourceError as exc:
                self._status(DiagnosticStatus.ERROR, f"{exc}; reconnecting in {period:g} s")
                self.source.close()
                self._stop.wait(period)
            except Exception as exc:  # a pyrealsense2 error of another kind: report, never kill the node
                self._status(DiagnosticStatus.ERROR, f"{exc!r}; reconnecting in {period:g} s")
                self.source.close()
                self._stop.wait(period)

    def _publish(self, f: Frames) -> None:
        if f.depth_mm is not None and f.depth_k is not None:
            stamp = _stamp(f.stamp_s)
            self.pubs["depth"].publish(image_msg(f.depth_mm, "16UC1", stamp, self.depth_frame))
            self.pubs["depth_info"].publish(info_msg(f.depth_k, stamp, self.depth_frame))
            if "aligned" in self.pubs and f.aligned_mm is not None and f.color_k is not None:
                self.pubs["aligned"].publish(image_msg(f.aligned_mm, "16UC1", stamp, self.color_frame))
                self.pubs["aligned_info"].publish(info_msg(f.color_k, stamp, self.color_frame))
            elif "aligned" in self.pubs and f.aligned_mm is not None and self._color_k is not None:
                self.pubs["aligned"].publish(image_msg(f.aligned_mm, "16UC1", stamp, self.color_frame))
                self.pubs["aligned_info"].publish(info_msg(self._color_k, stamp, self.color_frame))
            self.frames += 1
        if "color" in self.pubs and f.color is not None and f.color_k is not None:
            self._color_k = f.color_k
            stamp = _stamp(f.color_stamp_s)
            self.pubs["color"].publish(image_msg(f.color, "rgb8", stamp, self.color_frame))
            self.pubs["color_info"].publish(info_msg(f.color_k, stamp, self.color_frame))


def _stamp(t: float) -> Any:
    sec = int(np.floor(t))
    return Time(seconds=sec, nanoseconds=int((t - sec) * 1e9)).to_msg()


class RealSenseNode(Node):
    def __init__(self, source_factory: Any = None, **node_kwargs: Any) -> None:
        """``source_factory(name, serial, playback, cfg)`` replaces RealSenseSource (tests)."""
        super().__init__(NODE_NAME, **node_kwargs)
        self.cfg = self._read_config()
        cfg = self.cfg
        factory = source_factory or (
            lambda name, serial, playback, c: RealSenseSource(
                serial=serial,
                playback=playback,
                width=c.width,
                height=c.height,
                fps=c.fps,
                color=c.enable_color,
                align=c.align_depth,
                realtime=c.playback_realtime,
                loop=c.playback_loop,
                stamp_mode=c.stamp_mode or None,
                timeout_ms=c.frame_timeout_ms,
            )
        )
        self.workers = [
            CameraWorker(self, name, factory(name, serial, playback, cfg))
            for name, serial, playback in cfg.cameras()
        ]
        self._diag = self.create_publisher(
            DiagnosticArray,
            cfg.diagnostics_topic,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
        )
        self._timer = self.create_timer(1.0, self._on_diagnostics)
        for w in self.workers:
            w.start()
        self.get_logger().info(
            f"realsense up: cameras {[w.name for w in self.workers]} under {cfg.namespace}"
            + (f", playing {cfg.playback}" if cfg.playback else "")
        )

    def _read_config(self) -> RealSenseConfig:
        return RealSenseConfig.from_dict(declare_fields(self, RealSenseConfig))

    def _on_diagnostics(self) -> None:
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for w in self.workers:
            st = DiagnosticStatus(
                level=w.level,
                name=f"{NODE_NAME}: {w.name}",
                message=w.message,
                hardware_id=w.source.device_serial or w.source.playback or "none",
            )
            st.values = [
                KeyValue(key="frames", value=str(w.frames)),
                KeyValue(key="device", value=w.source.device_name or "none"),
                KeyValue(key="errors", value=str(w.errors)),
                KeyValue(key="recent_errors", value=" | ".join(w.recent_errors)),
            ]
            arr.status.append(st)
        self._diag.publish(arr)

    def shutdown(self) -> None:
        self._timer.cancel()
        for w in self.workers:
            w.stop()


def main(args: list[str] | None = None) -> int:
    return run_nodes(lambda: [RealSenseNode()], args, name="realsense", num_threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
