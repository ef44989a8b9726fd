"""ROS 2 shell of perception: topics, timer, service; the work is in pipeline.py and head_image.py.

Interface (names configurable, see config/perception.yaml)
----------------------------------------------------------
Run: ``ros2 run recipe_perception perception --ros-args --params-file config/perception.yaml``.

Subscribes
* ``/camera/third_view/depth/image_rect_raw`` + ``.../depth/camera_info`` (16UC1 mm or 32FC1 m, as
  realsense2_camera and the twin publish; sam2: ``aligned_depth_to_color`` + ``color/image_raw``);
* ``/joint_states`` (robot self-filter, hand attachment);
* ``/camera/head/depth/image_rect_raw`` + camera_info (the head outputs).

Publishes
* ``/object_state`` (``recipe_interfaces/ObjectState``) at ``rate_hz`` (5 Hz): the object's centre in
  ``base_link``, confidence 0..1 and status TRACKING / OCCLUDED / LOST / INITIALIZING. TRACKING: measured
  in this frame. OCCLUDED: not seen in this frame; the position is the last measured one (held for
  ``occluded_timeout_s``) or, while a closed hand holds it, where that hand carries it. LOST and
  INITIALIZING carry NaN: no position is ever made up. ``header.stamp`` is the depth frame's capture time
  (the node's clock when there is no usable frame);
* ``/perception/debug_image`` (``sensor_msgs/Image`` rgb8, half the depth resolution): depth in grey,
  the target mask green, the robot's own pixels blue, the estimated centre as a red cross;
* ``/perception/head_depth/policy_image`` (32FC1, 84x84, metres): the head frame through
  ``recipe_common.policy_image.to_policy_image``, i.e. exactly the policy's depth input;
* ``/perception/head_depth/segmented`` (32FC1, 84x84): the same with the table and beyond set to far
  (the paper's segmented-depth variant);
* ``/diagnostics``: status, reason, frame rate, latency, at 1 Hz.

Service ``/perception/reset`` (``std_srvs/Trigger``): forget the target and pick it again from
``target_prompt`` (the policy node calls it at the start of each episode). Setting the ``target_prompt``
parameter at run time (``ros2 param set /perception target_prompt pixel:420,200``) does the same.

Every bad input (no frames, a stale frame, wrong encoding, size mismatch with camera_info, all-zero or
NaN depth, no joint states for the self-filter) is logged with its reason (throttled) and turns the
status to OCCLUDED/LOST by the track rules; it never produces a position.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger

from recipe_common import frames
from recipe_common.cameras import camera_table
from recipe_common.policy_image import PolicyImageSpec
from recipe_common.ros.params import declare_fields
from recipe_common.ros.process import run_nodes
from recipe_common.ros.stamps import stamp_s
from recipe_interfaces.msg import ObjectState
from recipe_perception import extrinsics as extrinsics_mod
from recipe_perception.config import NODE_NAME, PerceptionConfig
from recipe_perception.debug_image import debug_image
from recipe_perception.depth_frame import DepthFrame, FrameError, decode_depth, intrinsics_from_info
from recipe_perception.depth_segmenter import DepthSegmenter
from recipe_perception.head_image import HeadDepth
from recipe_perception.joint_history import JointHistory
from recipe_perception.pipeline import ObjectEstimate, ThirdViewPipeline
from recipe_perception.segmenter import Prompt
from recipe_perception.tracking import TrackStatus


def _kind(reason: str) -> str:
    return re.sub(r"[-+]?\d+(\.\d+)?", "#", reason)


def make_segmenter(cfg: PerceptionConfig) -> Any:
    helper = DepthSegmenter(cfg.depth_segmenter_config())
    if cfg.segmenter == "depth":
        return helper
    from recipe_perception.sam2_segmenter import Sam2Segmenter, build_sam2_predictor

    return Sam2Segmenter(
        predictor_factory=lambda: build_sam2_predictor(cfg.sam2_checkpoint, cfg.sam2_config, cfg.sam2_device),
        prompt_helper=helper,
    )


def self_filter_factory(cfg: PerceptionConfig, cam_to_base: np.ndarray) -> Any:
    """Builds the robot self-filter now (loading the robot model takes seconds) for the camera table's
    stream at the segmenter's scale; the pipeline re-places its camera when the real intrinsics differ."""
    from recipe_perception.self_filter import RobotSelfFilter  # MuJoCo and recipe_sim only from here

    stream = camera_table()[cfg.camera].stream
    s = cfg.processing_scale
    k0 = stream.scaled(stream.width // s, stream.height // s) if s > 1 else stream
    prebuilt: list[Any] = [RobotSelfFilter(cam_to_base, k0, cfg.hand, cfg.self_filter_padding_m)]

    def factory(k: Any) -> Any:
        if prebuilt and (prebuilt[0].intrinsics.width, prebuilt[0].intrinsics.height) == (k.width, k.height):
            f = prebuilt.pop()
            if f.intrinsics != k:
                f.set_camera(cam_to_base, k)
            return f
        while prebuilt:
            prebuilt.pop().close()
        return RobotSelfFilter(cam_to_base, k, cfg.hand, cfg.self_filter_padding_m)

    def close() -> None:
        while prebuilt:
            prebuilt.pop().close()

    factory.close = close  # type: ignore[attr-defined]
    return factory


class PerceptionNode(Node):
    def __init__(self, segmenter: Any = None, **node_kwargs: Any) -> None:
        """``segmenter`` replaces the configured one (tests: a SAM2 stand-in)."""
        super().__init__(NODE_NAME, **node_kwargs)
        self.cfg = self._read_config()
        cfg = self.cfg
        self.extrinsics = extrinsics_mod.resolve(cfg.extrinsics, cfg.camera)
        self._filter_factory = None
        if cfg.self_filter and cfg.segmenter == "depth":
            self._filter_factory = self_filter_factory(cfg, self.extrinsics.cam_to_parent)
        self.pipeline = ThirdViewPipeline(
            segmenter if segmenter is not None else make_segmenter(cfg),
            self.extrinsics,
            cfg.prompt(),
            self_filter_factory=self._filter_factory,
            occluded_timeout_s=cfg.occluded_timeout_s,
            init_timeout_s=cfg.init_timeout_s,
            use_hand_attachment=cfg.hand_attachment,
            footprint=cfg.footprint(),
        )
        self.pipeline.reset(self._now())
        self._head = (
            HeadDepth(PolicyImageSpec.for_camera(camera_table()[cfg.head_camera]), cfg.head_min_height_m)
            if cfg.head_camera
            else None
        )
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        # the self-filter renders the robot as it was when the frame was taken, not as it is now
        self._joints = JointHistory(horizon_s=cfg.max_frame_age_s + 0.5)
        self._received: dict[str, float] = {}
        self._colors: list[Image] = []
        self._processed_depth: Any = None
        self._processed_head: Any = None
        self._reset_pending: Prompt | None = None
        self._last_msg: ObjectState | None = None
        self._last_est: ObjectEstimate | None = None
        self._last_reason = ""
        self._frames = 0
        self._latencies: list[float] = []
        self._closed = False
        self._setup_ros()

    # ----------------------------------------------------------------- configuration
    def _read_config(self) -> PerceptionConfig:
        return PerceptionConfig.from_dict(declare_fields(self, PerceptionConfig))

    def _setup_ros(self) -> None:
        cfg = self.cfg
        data = MutuallyExclusiveCallbackGroup()
        work = MutuallyExclusiveCallbackGroup()
        service = MutuallyExclusiveCallbackGroup()
        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        depth_topic, info_topic = cfg.depth_topics()
        self.depth_topic = depth_topic
        self._subs = [
            self.create_subscription(
                Image, depth_topic, lambda m: self._store("depth", m), reliable, callback_group=data
            ),
            self.create_subscription(
                CameraInfo, info_topic, lambda m: self._store("info", m), reliable, callback_group=data
            ),
            self.create_subscription(
                JointState,
                cfg.joint_states_topic,
                lambda m: self._store("joints", m),
                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE),
                callback_group=data,
            ),
        ]
        if cfg.segmenter == "sam2":
            self._subs.append(
                self.create_subscription(
                    Image, cfg.color_topic_name(), self._on_color, reliable, callback_group=data
                )
            )
        head = cfg.head_topics()
        if head is not None and self._head is not None:
            self._subs += [
                self.create_subscription(
                    Image, head[0], lambda m: self._store("head", m), reliable, callback_group=data
                ),
                self.create_subscription(
                    CameraInfo, head[1], lambda m: self._store("head_info", m), reliable, callback_group=data
                ),
            ]
        self._state_pub = self.create_publisher(ObjectState, cfg.object_state_topic, reliable)
        self._debug_pub = (
            self.create_publisher(Image, cfg.debug_image_topic, reliable) if cfg.publish_debug_image else None
        )
        self._head_pub = self.create_publisher(Image, cfg.head_policy_image_topic, reliable)
        self._head_seg_pub = self.create_publisher(Image, cfg.head_segmented_topic, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, cfg.diagnostics_topic, reliable)
        self.create_service(Trigger, cfg.reset_service, self._on_reset, callback_group=service)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._timers = [
            self.create_timer(1.0 / cfg.rate_hz, self._on_tick, callback_group=work),
            self.create_timer(1.0, self._on_diagnostics, callback_group=service),
        ]
        self.get_logger().info(
            f"perception up: segmenter={cfg.segmenter} prompt={cfg.target_prompt} depth={depth_topic} "
            f"extrinsics={cfg.extrinsics} self_filter={self._filter_factory is not None} "
            f"-> {cfg.object_state_topic} at {cfg.rate_hz:g} Hz in {frames.BASE}"
        )

    # ----------------------------------------------------------------- callbacks
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _store(self, key: str, msg: Any) -> None:
        with self._lock:
            self._latest[key] = msg
            self._received[key] = time.monotonic()
            if key == "joints":
                self._joints.add(stamp_s(msg.header.stamp), msg.name, msg.position)

    def _on_color(self, msg: Image) -> None:
        with self._lock:
            self._colors = [*self._colors, msg][-6:]

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._reset_pending = self.pipeline.prompt
        response.success = True
        response.message = f"tracking reset; target prompt {self.pipeline.prompt}"
        self.get_logger().info(response.message)
        return response

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        for p in params:
            if p.name == "target_prompt":
                try:
                    prompt = Prompt.parse(str(p.value))
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                with self._lock:
                    self._reset_pending = prompt
                self.get_logger().info(f"target prompt set to {prompt}; tracking reset")
            elif p.name in {f.name for f in dataclasses.fields(PerceptionConfig)}:
                return SetParametersResult(
                    successful=False, reason=f"{p.name} is read at start-up only (target_prompt can change)"
                )
        return SetParametersResult(successful=True)

    def _on_tick(self) -> None:
        if self._closed:
            return
        now = self._now()
        with self._lock:
            latest = dict(self._latest)
            received = dict(self._received)
            reset, self._reset_pending = self._reset_pending, None
        if reset is not None:
            self.pipeline.reset(now, reset)
            self._last_msg = None  # the old estimate must not be republished after a reset
        est = self._third_view(latest, received, now)
        if est is not None:
            self._publish(est)
        self._head_outputs(latest)

    def _third_view(
        self, latest: dict[str, Any], received: dict[str, float], now: float
    ) -> ObjectEstimate | None:
        cfg = self.cfg
        depth = latest.get("depth")
        mono = time.monotonic()
        if depth is None:
            return self.pipeline.bad_frame(now, f"no depth frames on {self.depth_topic} yet")
        if depth is self._processed_depth:
            age = mono - received["depth"]
            if age > cfg.frame_timeout_s:
                return self.pipeline.bad_frame(
                    now, f"no new depth frame on {self.depth_topic} for {age:.1f} s"
                )
            if self._last_msg is None:
                return self.pipeline.bad_frame(now, "waiting for a new depth frame after the reset")
            self._state_pub.publish(self._last_msg)  # the same measurement again, keeping the rate
            return None
        self._processed_depth = depth
        stamp = stamp_s(depth.header.stamp)
        if now - stamp > cfg.max_frame_age_s:
            return self.pipeline.bad_frame(
                now,
                f"stale depth frame: stamped {now - stamp:.2f} s ago "
                f"(max_frame_age_s {cfg.max_frame_age_s:g})",
            )
        info = latest.get("info")
        if info is None:
            return self.pipeline.bad_frame(stamp, "no camera_info received for the depth stream")
        try:
            k = intrinsics_from_info(int(info.width), int(info.height), info.k)
            d, valid = decode_depth(
                depth.encoding,
                int(depth.width),
                int(depth.height),
                int(depth.step),
                bool(depth.is_bigendian),
                bytes(depth.data),
                k,
                cfg.min_valid_fraction,
            )
        except FrameError as exc:
            return self.pipeline.bad_frame(stamp, str(exc))
        joints = None
        if self.pipeline.uses_self_filter:
            js = latest.get("joints")
            if js is None:
                return self.pipeline.bad_frame(
                    stamp, f"no joint states on {cfg.joint_states_topic} for the robot self-filter"
                )
            if mono - received["joints"] > cfg.joint_state_timeout_s:
                return self.pipeline.bad_frame(
                    stamp,
                    f"joint states are {mono - received['joints']:.1f} s old "
                    "(the robot self-filter needs current ones)",
                )
            with self._lock:
                joints = self._joints.at(stamp)
            if joints is None:  # joint states stamped ahead of the node's clock: use the newest, as before
                self.get_logger().warning(
                    f"joint states on {cfg.joint_states_topic} are stamped after this depth frame by more "
                    "than their history; is one of the two stamped by another clock? Using the newest.",
                    throttle_duration_sec=5.0,
                )
                joints = (list(js.name), list(js.position))
        color = None
        if getattr(self.pipeline.segmenter, "needs_color", False):
            color, why = self._color_for(stamp)
            if color is None:
                return self.pipeline.bad_frame(stamp, why)
        est = self.pipeline.process(DepthFrame(d, k, stamp, depth.header.frame_id, valid), joints, color)
        self._frames += 1
        self._latencies = [*self._latencies, est.process_s][-50:]
        self._publish_debug(d, k, est)
        return est

    def _color_for(self, stamp: float) -> tuple[np.ndarray | None, str]:
        with self._lock:
            colors = list(self._colors)
        if not colors:
            return None, f"no colour frames on {self.cfg.color_topic_name()}"
        best = min(colors, key=lambda m: abs(stamp_s(m.header.stamp) - stamp))
        gap = abs(stamp_s(best.header.stamp) - stamp)
        if gap > self.cfg.color_sync_s:
            return (
                None,
                f"no colour frame within {self.cfg.color_sync_s:g} s of the depth frame ({gap:.3f} s)",
            )
        if (
            best.encoding not in ("rgb8", "bgr8")
            or best.step < 3 * best.width
            or len(best.data) != best.step * best.height
        ):
            return None, f"colour frame is not a well-formed rgb8/bgr8 image (encoding {best.encoding!r})"
        img = np.frombuffer(bytes(best.data), np.uint8).reshape(best.height, best.step)[:, : 3 * best.width]
        img = img.reshape(best.height, best.width, 3)
        return (img[..., ::-1].copy() if best.encoding == "bgr8" else img.copy()), ""

    def _publish(self, est: ObjectEstimate) -> None:
        msg = ObjectState()
        sec = int(np.floor(est.stamp))
        msg.header.stamp.sec, msg.header.stamp.nanosec = (
            sec,
            round((est.stamp - sec) * 1e9) % 1_000_000_000,
        )
        msg.header.frame_id = frames.BASE
        p = est.position if est.position is not None else np.full(3, np.nan)
        msg.position.x, msg.position.y, msg.position.z = (float(v) for v in p)
        msg.confidence = float(est.confidence)
        msg.status = int(est.status)
        self._state_pub.publish(msg)
        self._last_msg, self._last_est = msg, est
        if est.status != TrackStatus.TRACKING and est.reason:
            # rclpy fixes a call site's severity and throttling on first use: one call per combination.
            text = f"{est.status.name}: {est.reason}"
            lost = est.status == TrackStatus.LOST
            if _kind(est.reason) != _kind(self._last_reason):  # a new reason, not new numbers in it
                if lost:
                    self.get_logger().warning(text)
                else:
                    self.get_logger().info(text)
            elif lost:
                self.get_logger().warning(text, throttle_duration_sec=5.0)
            else:
                self.get_logger().info(text, throttle_duration_sec=5.0)
        self._last_reason = est.reason

    def _publish_debug(self, depth: np.ndarray, k: Any, est: ObjectEstimate) -> None:
        if self._debug_pub is None or self._debug_pub.get_subscription_count() == 0:
            return
        img = debug_image(
            depth,
            k,
            est,
            self.extrinsics,
            getattr(self.pipeline.segmenter, "last_robot", None),
            self.cfg.processing_scale,
        )
        msg = Image()
        msg.header.stamp = self._last_msg.header.stamp if self._last_msg is not None else msg.header.stamp
        msg.header.frame_id = self.extrinsics.child_frame or "third_view_camera_depth_optical_frame"
        msg.height, msg.width, msg.encoding, msg.is_bigendian = img.shape[0], img.shape[1], "rgb8", 0
        msg.step = 3 * img.shape[1]
        msg.data = img.tobytes()
        self._debug_pub.publish(msg)

    def _head_outputs(self, latest: dict[str, Any]) -> None:
        head, info = latest.get("head"), latest.get("head_info")
        if self._head is None or head is None or info is None or head is self._processed_head:
            return
        self._processed_head = head
        try:
            k = intrinsics_from_info(int(info.width), int(info.height), info.k)
            d, _ = decode_depth(
                head.encoding,
                int(head.width),
                int(head.height),
                int(head.step),
                bool(head.is_bigendian),
                bytes(head.data),
                k,
                0.0,
            )
            img = self._head.policy_image(d, k)
            seg = self._head.segmented(img)
        except (FrameError, ValueError) as exc:
            self.get_logger().warning(f"head depth frame skipped: {exc}", throttle_duration_sec=5.0)
            return
        for pub, arr in ((self._head_pub, img), (self._head_seg_pub, seg)):
            msg = Image()
            msg.header = head.header
            msg.height, msg.width, msg.encoding, msg.is_bigendian = arr.shape[0], arr.shape[1], "32FC1", 0
            msg.step = 4 * arr.shape[1]
            msg.data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
            pub.publish(msg)

    def _on_diagnostics(self) -> None:
        if self._closed:
            return
        est = self._last_est
        status = est.status if est is not None else TrackStatus.INITIALIZING
        level = {
            TrackStatus.TRACKING: DiagnosticStatus.OK,
            TrackStatus.OCCLUDED: DiagnosticStatus.OK,
            TrackStatus.INITIALIZING: DiagnosticStatus.WARN,
            TrackStatus.LOST: DiagnosticStatus.ERROR,
        }[status]
        lat = np.array(self._latencies) if self._latencies else np.array([np.nan])
        st = DiagnosticStatus(
            level=level,
            name=f"{NODE_NAME}: object",
            hardware_id=self.cfg.camera,
            message=status.name + (f": {est.reason}" if est is not None and est.reason else ""),
        )
        values = {
            "status": status.name,
            "segmenter": self.cfg.segmenter,
            "prompt": str(self.pipeline.prompt),
            "extrinsics": self.cfg.extrinsics,
            "frames_processed": str(self._frames),
            "latency_ms_median": f"{1000 * float(np.median(lat)):.1f}",
            "confidence": f"{est.confidence:.2f}" if est is not None else "0",
        }
        st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self._diag_pub.publish(arr)

    # ----------------------------------------------------------------- lifecycle
    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._timers:
            t.cancel()
        self.pipeline.close()
        close = getattr(self._filter_factory, "close", None)
        if close is not None:
            close()


def main(args: list[str] | None = None) -> int:
    return run_nodes(lambda: [PerceptionNode()], args, name="perception", num_threads=3)


if __name__ == "__main__":
    raise SystemExit(main())
