"""ROS 2 shell of the GR1 driver: parameters, topics, timers; the decisions live in controller.py.

Interface (topic names configurable, see config/driver.yaml)
-------------------------------------------------------------
Run: ``ros2 run recipe_gr1_driver driver --ros-args --params-file config/driver.yaml``.

* ``/joint_commands`` (sub, ``sensor_msgs/JointState``): position targets by joint name, in
  radians for arm *and* hand actuated joints (the driver's unit; convert normalized hand actions
  with ``robot_spec.action_to_joint_targets``). JointState is what ROS users already stream for
  joint targets (joint_state_publisher, MoveIt servo, teleop tools), and its names let the driver
  reject unknown joints and accept partial commands for one arm or one hand. Only ``position`` is
  read; a command with any unknown, duplicate or coupled name, a length mismatch or a NaN/inf is
  rejected as a whole and logged (throttled). Keep streaming: a joint whose commands stop for
  ``watchdog_timeout`` is held where it is.
* ``/joint_states`` (pub, ``sensor_msgs/JointState``): ``robot_spec.state_joint_names(hand)``
  (actuated, then coupled hand joints) with position, velocity, effort at ``state_rate_hz``.
* ``/diagnostics`` (pub, ``diagnostic_msgs/DiagnosticArray``) at ``diagnostics_rate_hz``:
  safety (e-stop, watchdog, rejected command count, ramps) and backend (status, achieved rates).
* ``/estop`` (service, ``std_srvs/SetBool``): true engages, false releases.
* ``/estop`` (sub, ``std_msgs/Bool``): true engages; false is ignored on purpose, release is only
  possible through the service, so a stale or repeating publisher can never release an e-stop.
* Sim backend only: depth cameras as realsense2_camera publishes them,
  ``<camera_namespace>/<name>/depth/image_rect_raw`` (16UC1, mm) and ``.../depth/camera_info``.

Threading: a MultiThreadedExecutor with separate callback groups, so e-stop requests and command
intake never wait behind a slow camera render, and control + state publishing are serialised.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from recipe_common import robot_spec
from recipe_common.ros.params import declare_fields
from recipe_common.ros.process import freeze_startup_objects
from recipe_common.ros.shutdown import RosRunner
from recipe_gr1_driver.backends import Backend, DepthCameraSource, make_backend
from recipe_gr1_driver.cameras import depth_m_to_mm, intrinsics
from recipe_gr1_driver.command_path import build_controller
from recipe_gr1_driver.config import NODE_NAME, DriverConfig, check_params_files
from recipe_gr1_driver.safety import CommandRejected

N_ACT = robot_spec.ACTION_DIM
CAMERA_MAX_DUTY = 0.5  # fraction of wall time the camera callback may spend rendering


def source_id(info: Any) -> str:
    """A stable id of the publishing endpoint (its GID), used to detect a new command source."""
    gid = info.get("publisher_gid") if isinstance(info, dict) else None
    if isinstance(gid, dict) and gid.get("data") is not None:
        return bytes(gid["data"]).hex()
    return "unknown"


class RateMeter:
    """Counts events; rate() gives events/s since the previous rate() call."""

    def __init__(self) -> None:
        self._n = 0
        self._t = time.monotonic()

    def tick(self) -> None:
        self._n += 1

    def rate(self) -> float:
        now = time.monotonic()
        r = self._n / max(now - self._t, 1e-9)
        self._n, self._t = 0, now
        return r


class DriverNode(Node):
    def __init__(self, backend: Backend | None = None,
                 backend_factory: Callable[[DriverConfig], Backend] | None = None,
                 **node_kwargs: Any) -> None:
        """``backend`` / ``backend_factory(config)`` replace the configured backend (tests, tools)."""
        super().__init__(NODE_NAME, **node_kwargs)
        self.cfg = self._read_config()
        cfg = self.cfg
        self.controller = build_controller(cfg)
        if backend is None:
            backend = (backend_factory or make_backend)(cfg)
        self.backend = backend
        self.get_logger().info(f"starting backend '{self.backend.name}'")
        self.backend.start()
        try:
            self._setup_ros()
        except Exception:
            self.backend.stop()
            raise

    def _setup_ros(self) -> None:
        cfg = self.cfg
        self._state_names = list(self.backend.state_names)
        self._write_errors = 0
        self._incomplete_states = 0
        self.states_published = 0  # cumulative, in diagnostics: a recorder can check it lost nothing
        self.camera_frames_published = 0
        self._state_rate, self._control_rate, self._camera_rate = RateMeter(), RateMeter(), RateMeter()
        self._shutdown_lock = threading.Lock()
        self._closed = False
        self._camera_next = 0.0

        control_group = MutuallyExclusiveCallbackGroup()
        command_group = MutuallyExclusiveCallbackGroup()
        estop_group = MutuallyExclusiveCallbackGroup()
        diag_group = MutuallyExclusiveCallbackGroup()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

        self._state_pub = self.create_publisher(JointState, cfg.state_topic, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, cfg.diagnostics_topic, reliable)
        self.create_subscription(JointState, cfg.command_topic, self._on_command, reliable,
                                 callback_group=command_group)
        self.create_subscription(Bool, cfg.estop_topic, self._on_estop_topic, reliable,
                                 callback_group=estop_group)
        self.create_service(SetBool, cfg.estop_service, self._on_estop_service, callback_group=estop_group)
        self._driver_timers = [
            self.create_timer(1.0 / cfg.control_rate_hz, self._on_control, callback_group=control_group),
            self.create_timer(1.0 / cfg.state_rate_hz, self._on_state, callback_group=control_group),
            self.create_timer(1.0 / cfg.diagnostics_rate_hz, self._on_diagnostics, callback_group=diag_group),
        ]
        self._cameras = self._setup_cameras()
        self.get_logger().info(
            f"gr1 driver up: backend={self.backend.name} hand={cfg.hand} commands on {cfg.command_topic}, "
            f"state on {cfg.state_topic} at {cfg.state_rate_hz} Hz, cameras={list(self._cameras)}")

    # ----------------------------------------------------------------- configuration
    def _read_config(self) -> DriverConfig:
        return DriverConfig.from_dict(declare_fields(self, DriverConfig))

    def _setup_cameras(self) -> dict[str, tuple[str, Any, Any]]:
        cfg = self.cfg
        if cfg.camera_rate_hz <= 0 or not isinstance(self.backend, DepthCameraSource):
            return {}
        available = set(self.backend.depth_cameras())
        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        cams: dict[str, tuple[str, Any, Any]] = {}
        topics = cfg.camera_topics()
        for name, sim_name in zip(cfg.camera_names, cfg.camera_sim_names):
            img_topic, info_topic = topics[name]
            if sim_name not in available:
                self.get_logger().warning(f"camera {name}: backend has no camera {sim_name!r}; not published")
                continue
            cams[name] = (sim_name, self.create_publisher(Image, img_topic, reliable),
                          self.create_publisher(CameraInfo, info_topic, reliable))
        if cams:
            self._driver_timers.append(self.create_timer(1.0 / cfg.camera_rate_hz, self._on_cameras,
                                                  callback_group=MutuallyExclusiveCallbackGroup()))
        return cams

    # ----------------------------------------------------------------- callbacks
    def _on_command(self, msg: JointState, info: Any) -> None:
        # Two required arguments make rclpy pass the MessageInfo (publisher GID); with a default
        # value for ``info`` it would silently call with the message only.
        src = source_id(info)
        try:
            self.controller.submit(list(msg.name), msg.position, src, time.monotonic())
        except CommandRejected as exc:
            self.get_logger().error(f"rejected command from {src[:12]}: {exc.reason}",
                                    throttle_duration_sec=1.0)

    def _on_estop_topic(self, msg: Bool) -> None:
        if msg.data:
            if self.controller.engage_estop(f"{self.cfg.estop_topic} topic"):
                self.get_logger().warning(f"E-STOP engaged by {self.cfg.estop_topic} topic; holding pose")
        else:
            self.get_logger().info(f"{self.cfg.estop_topic} false ignored: release only through the "
                                   f"{self.cfg.estop_service} service", throttle_duration_sec=5.0)

    def _on_estop_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            changed = self.controller.engage_estop(f"{self.cfg.estop_service} service")
            response.message = "e-stop engaged" if changed else "e-stop already engaged"
            if changed:
                self.get_logger().warning("E-STOP engaged by service; holding pose")
        else:
            changed = self.controller.release_estop(time.monotonic())
            response.message = "e-stop released" if changed else "e-stop was not engaged"
            if changed:
                self.get_logger().warning("e-stop released; active command streams ramp in")
        response.success = True
        return response

    def _on_control(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if not self.controller.initialised:
            q, _, _ = self.backend.read_state()
            if q.shape[0] < N_ACT or not np.all(np.isfinite(q[:N_ACT])):
                return
            self.controller.reset(q[:N_ACT])
            self.get_logger().info("robot state received; holding the measured pose")
        target = self.controller.update(now)
        try:
            self.backend.write_targets(target)
            self._control_rate.tick()
        except Exception as exc:  # a backend hiccup must not kill the control timer
            self._write_errors += 1
            self.get_logger().error(f"backend write failed: {exc!r}", throttle_duration_sec=1.0)

    def _on_state(self) -> None:
        if self._closed:
            return
        q, dq, tau = self.backend.read_state()
        if not np.all(np.isfinite(q)):
            self._incomplete_states += 1
            return
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = self._state_names
        msg.position, msg.velocity, msg.effort = q.tolist(), dq.tolist(), tau.tolist()
        self._state_pub.publish(msg)
        self.states_published += 1
        self._state_rate.tick()

    def _on_cameras(self) -> None:
        # Rendering is the heaviest work in the process; keep it at most CAMERA_MAX_DUTY of one
        # thread so it cannot starve the control loop when the machine cannot keep up the rate.
        start = time.monotonic()
        if self._closed or start < self._camera_next:
            return
        for name, (sim_name, img_pub, info_pub) in self._cameras.items():
            if self._closed:  # shutdown() ran while this callback was under way: the backend is gone
                return
            # The capture instant: the backend copies the pose as the render starts, so this is the time the
            # image shows (a camera's exposure stamp). Stamped after the render, a frame looked 20-100 ms
            # newer than its content: perception then rendered the robot for its self-filter too far ahead,
            # and a frame of the object before a trial placed it counted as seen after the placement.
            stamp = self.get_clock().now().to_msg()
            try:
                depth, info = self.backend.render_depth(sim_name)  # type: ignore[attr-defined]
                img, cam_info = self._camera_msgs(name, depth, info, stamp)
            except Exception as exc:
                if self._closed:
                    return
                self.get_logger().error(f"camera {name}: render failed: {exc!r}", throttle_duration_sec=5.0)
                continue
            img_pub.publish(img)
            info_pub.publish(cam_info)
            self.camera_frames_published += 1
        self._camera_rate.tick()
        busy = time.monotonic() - start
        self._camera_next = start + busy / CAMERA_MAX_DUTY

    def _camera_msgs(self, name: str, depth: np.ndarray, info: dict, stamp: Any) -> tuple[Image, CameraInfo]:
        mm = depth_m_to_mm(depth, self.cfg.depth_max_m)
        width, height, k, p = intrinsics(info)
        if mm.shape != (height, width):
            raise ValueError(f"depth image {mm.shape} does not match camera_info {height}x{width}")
        frame = str(info.get("frame_id") or f"{name}_depth_optical_frame")
        img = Image()
        img.header.stamp, img.header.frame_id = stamp, frame
        img.height, img.width, img.encoding, img.is_bigendian = height, width, "16UC1", 0
        img.step = width * 2
        img.data = mm.tobytes()
        ci = CameraInfo()
        ci.header.stamp, ci.header.frame_id = stamp, frame
        ci.height, ci.width, ci.distortion_model = height, width, "plumb_bob"
        ci.d = [0.0] * 5
        ci.k, ci.p = k, p
        ci.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        return img, ci

    def _on_diagnostics(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        st = self.controller.status(now)
        backend = self.backend.status()
        fault = f"backend fault: {backend.message}"
        if st.initialised and not backend.ok and self.controller.engage_estop(fault):
            self.get_logger().error(f"E-STOP engaged: backend fault: {backend.message}")
            st = self.controller.status(now)
        if st.estop_engaged:
            level, message = DiagnosticStatus.ERROR, f"e-stop engaged ({st.estop_reason})"
        elif not st.initialised:
            level, message = DiagnosticStatus.WARN, "waiting for robot state"
        elif st.alive_joints == 0:
            level, message = DiagnosticStatus.OK, "watchdog: no active commands, holding pose"
        else:
            level, message = DiagnosticStatus.OK, f"tracking commands on {st.alive_joints} joints"
        safety = DiagnosticStatus(level=level, name=f"{NODE_NAME}: safety", message=message,
                                  hardware_id=self.backend.name)
        safety.values = _kv({
            "estop": "engaged" if st.estop_engaged else "released",
            "estop_reason": st.estop_reason,
            "watchdog": "holding" if st.alive_joints == 0 else "ok",
            "watchdog_timeout_s": f"{self.cfg.watchdog_timeout:g}",
            "command_age_s": f"{st.command_age_s:.3f}" if np.isfinite(st.command_age_s) else "never",
            "active_joints": str(st.alive_joints),
            "ramping_joints": str(st.ramping_joints),
            "accepted_commands": str(st.accepted_count),
            "rejected_commands": str(st.rejected_count),
            "last_rejection": st.last_rejection,
        })
        b = DiagnosticStatus(level=DiagnosticStatus.OK if backend.ok else DiagnosticStatus.ERROR,
                             name=f"{NODE_NAME}: backend", message=backend.message,
                             hardware_id=self.backend.name)
        b.values = _kv({
            "backend": self.backend.name,
            "state_rate_hz": f"{self._state_rate.rate():.1f}",
            "control_rate_hz": f"{self._control_rate.rate():.1f}",
            "camera_rate_hz": f"{self._camera_rate.rate():.1f}" if self._cameras else "off",
            "states_published": str(self.states_published),
            "camera_frames_published": str(self.camera_frames_published),
            "write_errors": str(self._write_errors),
            "incomplete_states": str(self._incomplete_states),
            **backend.values,
        })
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [safety, b]
        self._diag_pub.publish(arr)

    # ----------------------------------------------------------------- lifecycle
    def shutdown(self) -> None:
        """Stop timers and the backend (idempotent)."""
        with self._shutdown_lock:
            if self._closed:
                return
            self._closed = True
        for t in self._driver_timers:
            t.cancel()
        self.get_logger().info(f"stopping backend '{self.backend.name}'")
        self.backend.stop()
        self.get_logger().info("backend stopped")


def _kv(d: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=str(v)) for k, v in d.items()]


def main(args: list[str] | None = None) -> int:
    """``ros2 run recipe_gr1_driver driver``: exit 0 after Ctrl-C/SIGTERM, 2 on a configuration error.

    Every ``--params-file`` is validated before rclpy reads it (config.check_params_files), and the
    process stops through recipe_common.ros.shutdown: timers and callbacks first, then the backend
    (the robot connection or the twin), then ROS, all while the ROS context is still valid.
    """
    argv = list(sys.argv if args is None else args)
    try:
        check_params_files(argv)
        with RosRunner(argv) as ros:
            node = DriverNode()
            ros.add(node, stop=node.shutdown)
            freeze_startup_objects()  # no full-GC pause in the 100 Hz control loop
            ros.spin()
    except (ValueError, OSError, RCLError) as exc:  # bad configuration, missing file, unreachable robot
        print(f"{NODE_NAME}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
