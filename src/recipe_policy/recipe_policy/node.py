"""The policy node: a loaded policy (diffusion generalist or PPO specialist) drives the GR1 via the driver.

    ros2 run recipe_policy policy_node --ros-args --params-file config/policy_node.yaml -p policy:=<ref>
    ros2 service call /policy/start recipe_interfaces/srv/StartEpisode "{goal: [0.3, 0.1, 0.15]}"

Subscribes ``/joint_states`` (the driver's state), ``/object_state`` (perception's object centre in
base_link or world) and, for depth policies, the head camera's ``depth/image_rect_raw`` + ``camera_info``
(16UC1, realsense2_camera names). Publishes ``/joint_commands`` (targets in rad at ``command_rate_hz``,
only while RUNNING), ``/policy/status`` (PolicyStatus every tick: state, inference latency, observation-to-
command latency, chunk index, reason) and ``/diagnostics`` (1 Hz). Services: ``/policy/start``
(StartEpisode: task check, goal and its frame), ``/policy/stop`` and ``/policy/reset`` (std_srvs/Trigger;
reset also clears the policy's internal state).

The ROS shell only converts messages; every decision is ``recipe_policy.controller.PolicyController``'s.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger

from recipe_common import robot_spec
from recipe_common.cameras import DEFAULT_NAMESPACE, HEAD, CameraTopics, Intrinsics, camera_table
from recipe_common.config import (
    ConfigError,
    as_float,
    as_int,
    as_str,
    check_keys,
    field_default,
    in_file,
    load_node_params,
)
from recipe_common.frames import BASE, WORLD, to_world
from recipe_common.paths import config_path
from recipe_common.policy_image import to_policy_image
from recipe_common.realtime import RealtimeSection, realtime_priority
from recipe_common.ros.object_status import USABLE_STATUSES, status_name
from recipe_common.ros.params import read_node_config
from recipe_common.ros.process import run_nodes
from recipe_common.ros.stamps import stamp_s
from recipe_common.tasks import TASK_NAMES
from recipe_interfaces.msg import ObjectState, PolicyStatus
from recipe_interfaces.srv import StartEpisode
from recipe_policy.config import TIMESTEP_SPACINGS
from recipe_policy.controller import FAULT, HOLDING, IDLE, RUNNING, Limits, PolicyController

STATES = {IDLE: PolicyStatus.STATE_IDLE, RUNNING: PolicyStatus.STATE_RUNNING,
          HOLDING: PolicyStatus.STATE_HOLDING, FAULT: PolicyStatus.STATE_FAULT}

NODE_NAME = "policy"
PARAMS_FILE = "policy_node.yaml"


@dataclass(frozen=True)
class PolicyNodeConfig:
    policy: str = ""
    task: str = "grasp_reach"
    hand: str = robot_spec.DEFAULT_HAND
    command_rate_hz: float = 10.0
    max_joint_state_age_s: float = 0.2
    max_object_age_s: float = 0.5
    max_depth_age_s: float = 0.5
    max_inference_s: float = 0.25
    inference_steps: int = 0  # generalists: DDIM steps per chunk; 0 = the checkpoint's profile
    initial_noise_scale: float = -1.0  # generalists: the sampler's starting noise; < 0 = the checkpoint's
    timestep_spacing: str = ""  # generalists: DDIM timestep spacing; "" = the checkpoint's
    joint_state_topic: str = "/joint_states"
    command_topic: str = "/joint_commands"
    object_topic: str = "/object_state"
    head_camera: str = ""  # ros_name of the head camera; "" = the table's head camera
    camera_namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyNodeConfig:
        robot_spec.get_hand(d["hand"])
        return cls(
            policy=as_str(d["policy"], "policy", nonempty=True),
            task=as_str(d["task"], "task", choices=TASK_NAMES),
            hand=d["hand"],
            command_rate_hz=as_float(d["command_rate_hz"], "command_rate_hz", 1.0, 100.0),
            max_joint_state_age_s=as_float(d["max_joint_state_age_s"], "max_joint_state_age_s", 0.01, 5.0),
            max_object_age_s=as_float(d["max_object_age_s"], "max_object_age_s", 0.01, 5.0),
            max_depth_age_s=as_float(d["max_depth_age_s"], "max_depth_age_s", 0.01, 5.0),
            max_inference_s=as_float(d["max_inference_s"], "max_inference_s", 0.001, 5.0),
            inference_steps=as_int(d["inference_steps"], "inference_steps", 0, 1000),
            initial_noise_scale=as_float(d["initial_noise_scale"], "initial_noise_scale", -1.0, 1.0),
            timestep_spacing=as_str(d["timestep_spacing"], "timestep_spacing",
                                    choices=("", *TIMESTEP_SPACINGS)),
            joint_state_topic=as_str(d["joint_state_topic"], "joint_state_topic", nonempty=True),
            command_topic=as_str(d["command_topic"], "command_topic", nonempty=True),
            object_topic=as_str(d["object_topic"], "object_topic", nonempty=True),
            head_camera=as_str(d["head_camera"], "head_camera"),
            camera_namespace=as_str(d["camera_namespace"], "camera_namespace"),
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> PolicyNodeConfig:
        """config/policy_node.yaml (or ``path``) read outside ROS (benchmarks), validated as the node does;
        keys the file leaves out keep their defaults, unknown keys are errors."""
        path = Path(path) if path is not None else config_path(PARAMS_FILE)
        params = load_node_params(path, NODE_NAME)
        try:
            names = [f.name for f in fields(cls)]
            check_keys(params, names, f"{NODE_NAME}.ros__parameters")
            return cls.from_dict({**{f.name: field_default(f) for f in fields(cls)}, **params})
        except ConfigError as exc:
            raise in_file(path, exc) from None

    def sampling(self) -> dict[str, Any]:
        """``load_policy`` keywords for a generalist's sampler (the node and the deploy benchmark's sim
        side load the policy with the same ones)."""
        scale = self.initial_noise_scale
        return {"inference_steps": self.inference_steps, "initial_noise_scale": scale if scale >= 0 else None,
                "timestep_spacing": self.timestep_spacing or None}

    def limits(self) -> Limits:
        return Limits(self.max_joint_state_age_s, self.max_object_age_s, self.max_depth_age_s,
                      self.max_inference_s)


class PolicyNode(Node):
    def __init__(self, policy: Any = None, **node_kwargs: Any) -> None:
        """``policy`` (a DeployablePolicy) replaces loading ``cfg.policy`` (tests, tools)."""
        super().__init__(NODE_NAME, **node_kwargs)
        self.cfg = cfg = read_node_config(self, PolicyNodeConfig)
        if policy is None:
            from recipe_policy.loading import PolicyLoadError, load_policy

            try:
                policy = load_policy(cfg.policy, **cfg.sampling())
            except PolicyLoadError as exc:
                raise ConfigError(f"policy: {exc}") from None
            except ValueError as exc:
                raise ConfigError(f"sampler settings (inference_steps, ...): {exc}") from None
        spec = policy.spec
        if spec.task != cfg.task:
            raise ValueError(f"policy {cfg.policy!r} runs task {spec.task!r}, task is set to {cfg.task!r}")
        if spec.hand != cfg.hand:
            raise ValueError(f"policy {cfg.policy!r} is for the {spec.hand!r} hand, not {cfg.hand!r}")
        policy.warm_up()
        # The inference under SCHED_FIFO where the process's environment asks for it (the stack's policy
        # process does); probed once here so the log says whether it took.
        realtime = RealtimeSection(realtime_priority())
        with realtime:
            pass
        if realtime.priority:
            where = f"SCHED_FIFO priority {realtime.priority}" if realtime.active else "normal priority"
            why = f" ({realtime.error})" if realtime.error else ""
            self.get_logger().info(f"inference under {where}{why}")
        self.controller = PolicyController(policy, cfg.limits(), clock=self._now, realtime=realtime)
        self._lock = threading.Lock()
        self._names = robot_spec.actuated_joint_names()
        self._index: dict[str, int] = {}
        self._info: Intrinsics | None = None
        self.sent = 0
        inputs = MutuallyExclusiveCallbackGroup()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(JointState, cfg.joint_state_topic, self._on_joint_state, reliable,
                                 callback_group=inputs)
        self.create_subscription(ObjectState, cfg.object_topic, self._on_object, reliable,
                                 callback_group=inputs)
        if spec.uses_depth:
            head = cfg.head_camera or camera_table()[HEAD].ros_name
            topics = CameraTopics.of(head, cfg.camera_namespace)
            self.create_subscription(CameraInfo, topics.depth_info, self._on_info, reliable,
                                     callback_group=inputs)
            self.create_subscription(Image, topics.depth, self._on_depth, reliable, callback_group=inputs)
        self._cmd = self.create_publisher(JointState, cfg.command_topic, reliable)
        self._status = self.create_publisher(PolicyStatus, "/policy/status", reliable)
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable)
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(StartEpisode, "/policy/start", self._on_start, callback_group=services)
        self.create_service(Trigger, "/policy/stop", self._on_stop, callback_group=services)
        self.create_service(Trigger, "/policy/reset", self._on_reset, callback_group=services)
        self._timers = [
            self.create_timer(1.0 / cfg.command_rate_hz, self._on_tick,
                              callback_group=MutuallyExclusiveCallbackGroup()),
            self.create_timer(1.0, self._on_diagnostics, callback_group=MutuallyExclusiveCallbackGroup()),
        ]
        self.get_logger().info(
            f"policy {cfg.policy!r} ({spec.kind}, task {spec.task}, objects {list(spec.objects)}) loaded; "
            f"{'depth + ' if spec.uses_depth else ''}state, chunks of {spec.action_horizon} every "
            f"{spec.inference_period:.2f} s, commands at {cfg.command_rate_hz:g} Hz on {cfg.command_topic}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs -----------------------------------------------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        if len(msg.name) != len(msg.position):
            return
        index = {n: i for i, n in enumerate(msg.name)}
        if any(n not in index for n in self._names):
            self.get_logger().warning("joint state without every actuated joint; ignored",
                                      throttle_duration_sec=5.0)
            return
        q = np.array([msg.position[index[n]] for n in self._names])
        if np.isfinite(q).all():
            with self._lock:
                self.controller.set_joint_state(stamp_s(msg.header.stamp), q)

    def _on_object(self, msg: ObjectState) -> None:
        t = stamp_s(msg.header.stamp)
        p = np.array([msg.position.x, msg.position.y, msg.position.z])
        with self._lock:
            if msg.status not in USABLE_STATUSES:
                self.controller.set_object(t, None, f"perception reports {status_name(msg.status)}")
            elif not np.isfinite(p).all():
                self.controller.set_object(t, None, "object position is not finite")
            elif msg.header.frame_id not in (BASE, WORLD):
                self.controller.set_object(t, None, f"object frame {msg.header.frame_id!r} is neither "
                                                    f"{BASE!r} nor {WORLD!r}")
            else:
                self.controller.set_object(t, to_world(p, msg.header.frame_id))

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            self._info = Intrinsics.from_k(list(msg.k), msg.width, msg.height)
        except ValueError as exc:
            self.get_logger().warning(f"bad camera_info: {exc}", throttle_duration_sec=5.0)

    def _on_depth(self, msg: Image) -> None:
        spec = self.controller.spec.depth
        if self._info is None or spec is None:
            return
        if msg.encoding not in ("16UC1", "mono16") or msg.width * msg.height * 2 != len(msg.data):
            self.get_logger().warning(f"head depth: expected 16UC1 {msg.width}x{msg.height}, got "
                                      f"{msg.encoding!r} with {len(msg.data)} bytes",
                                      throttle_duration_sec=5.0)
            return
        frame = np.frombuffer(bytes(msg.data), np.uint16).reshape(msg.height, msg.width)
        try:
            image = to_policy_image(frame, self._info, spec)
        except ValueError as exc:
            self.get_logger().warning(f"head depth: {exc}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self.controller.set_depth(stamp_s(msg.header.stamp), image)

    # --- services ---------------------------------------------------------------------------------------

    def _on_start(self, req: StartEpisode.Request, res: StartEpisode.Response) -> StartEpisode.Response:
        goals = {}
        for field in ("goal", "final_goal"):
            value = getattr(req, field)
            goals[field] = None
            if not len(value):
                continue
            if len(value) != 3:
                res.success, res.message = False, f"{field} must have 3 numbers, got {len(value)}"
                return res
            try:
                goals[field] = to_world(np.asarray(value, dtype=np.float64), req.goal_frame or BASE)
            except ValueError as exc:
                res.success, res.message = False, str(exc)
                return res
        with self._lock:
            res.success, res.message = self.controller.start(goals["goal"], req.task, req.side,
                                                             goals["final_goal"])
        self.get_logger().info(f"start: {res.message}")
        return res

    def _on_stop(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.controller.stop("stopped by /policy/stop")
        res.success, res.message = True, "stopped"
        return res

    def _on_reset(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.controller.stop("reset by /policy/reset")
            self.controller.policy.reset()
        res.success, res.message = True, "reset"
        return res

    # --- the tick ---------------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        with self._lock:
            tick = self.controller.tick()
            chunk_index = self.controller.chunk_index
        if tick.targets is not None:
            msg = JointState()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.name = self._names
            msg.position = [float(v) for v in tick.targets]
            self._cmd.publish(msg)
            self.sent += 1
        status = PolicyStatus()
        status.header.stamp = self.get_clock().now().to_msg()
        status.task = self.controller.spec.task
        status.state = STATES[tick.state]
        status.inference_latency = float(tick.inference_s) if tick.inference_s is not None else float("nan")
        status.observation_to_command = float(tick.latency_s) if tick.latency_s is not None else float("nan")
        status.chunk_index = chunk_index
        status.message = tick.reason
        if tick.state == RUNNING and tick.reason:  # an event of a running episode (the handover's goal swap)
            self.get_logger().info(tick.reason)
        self._status.publish(status)

    def _on_diagnostics(self) -> None:
        c = self.controller
        level = {IDLE: DiagnosticStatus.OK, RUNNING: DiagnosticStatus.OK, HOLDING: DiagnosticStatus.WARN,
                 FAULT: DiagnosticStatus.ERROR}[c.state]
        st = DiagnosticStatus(level=level, name="policy: episode", message=f"{c.state}: {c.reason}",
                              hardware_id=self.cfg.policy)
        st.values = [KeyValue(key=k, value=str(v)) for k, v in {
            "state": c.state, "reason": c.reason, "chunk_index": c.chunk_index, "commands_sent": self.sent,
            "chunks_rejected": c.runtime.rejected, "policy": self.cfg.policy, "kind": c.spec.kind}.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self._diag.publish(arr)

    def shutdown(self) -> None:
        for t in self._timers:
            t.cancel()


def main(args: list[str] | None = None) -> int:
    # One intra-op thread: a 5 Hz inference on a shared workstation CPU is faster and far steadier than
    # with torch's default thread pool contending with the driver and perception (p95 seconds vs ~50 ms).
    import torch

    torch.set_num_threads(1)
    return run_nodes(lambda: [PolicyNode()], args, name="policy_node")


if __name__ == "__main__":
    sys.exit(main())
