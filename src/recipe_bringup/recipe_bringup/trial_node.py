"""The trial service of the MuJoCo twin: ``/trial/reset`` starts a trial, ``/trial/status`` gives the verdict.

A ROS shell around ``recipe_sim.trials.TwinTrials`` (the pure spawn/judge logic). It lives in the
process that runs the twin (the driver's sim backend), because it reads the twin's ground truth and
places the object: on the real robot a person does that part. The reset is what a careful operator would
do: park the object out of the way, bring the robot to the ready pose through the driver (commands on
``/joint_commands``, so the driver's safety filter and ramps apply; never a teleport the driver would not
know about), place the object at the trial's pose, then start judging at the policy rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import Point
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState

from recipe_bringup.stack import TWIN_TRUTH_TOPIC
from recipe_common import robot_spec
from recipe_common.config import as_float, as_int, as_str
from recipe_common.frames import WORLD
from recipe_common.ros.params import read_node_config
from recipe_common.tasks import TASK_NAMES
from recipe_interfaces.msg import ObjectState, TrialStatus
from recipe_interfaces.srv import ResetTrial

STATES = {"idle": TrialStatus.STATE_IDLE, "running": TrialStatus.STATE_RUNNING,
          "success": TrialStatus.STATE_SUCCESS, "failure": TrialStatus.STATE_FAILURE,
          "timeout": TrialStatus.STATE_TIMEOUT}
PARK_POSE = np.array([0.75, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # far edge of the table (z set from the table)


@dataclass(frozen=True)
class TrialConfig:
    task: str = "grasp_reach"
    seed: int = 0
    randomization: str = ""
    command_topic: str = "/joint_commands"
    ready_speed: float = 0.6
    ready_tolerance: float = 0.03
    truth_topic: str = ""  # publish the twin's true object position here as ObjectState (debugging)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        return cls(task=as_str(d["task"], "task", choices=TASK_NAMES),
                   seed=as_int(d["seed"], "seed", minimum=0),
                   randomization=as_str(d["randomization"], "randomization"),
                   command_topic=as_str(d["command_topic"], "command_topic", nonempty=True),
                   ready_speed=as_float(d["ready_speed"], "ready_speed", 0.05, 2.0),
                   ready_tolerance=as_float(d["ready_tolerance"], "ready_tolerance", 0.001, 0.2),
                   truth_topic=as_str(d["truth_topic"], "truth_topic"))


class TrialNode(Node):
    """Trials of one task on a SimTwin; ``twin`` is a callable returning the running twin (or None)."""

    def __init__(self, twin: Callable[[], Any], **node_kwargs: Any) -> None:
        super().__init__("trials", **node_kwargs)
        self.cfg = cfg = read_node_config(self, TrialConfig)
        self._get_twin = twin
        self._randomization = None
        if cfg.randomization:
            from recipe_sim.randomization import RandomizationConfig

            self._randomization = RandomizationConfig.load(cfg.randomization)
        self._next_seed = cfg.seed
        self._speed = cfg.ready_speed
        self._tolerance = cfg.ready_tolerance
        self._lock = threading.Lock()
        self._trials: Any = None  # recipe_sim.trials.TwinTrials, built on first use (needs the twin)
        self._trial_id = 0
        self._t0 = 0.0
        self._names = robot_spec.actuated_joint_names()
        self._cmd = self.create_publisher(JointState, cfg.command_topic, 10)
        self._status = self.create_publisher(TrialStatus, "/trial/status", 10)
        self.create_service(ResetTrial, "/trial/reset", self._on_reset,
                            callback_group=ReentrantCallbackGroup())
        self._judge_timer = self.create_timer(0.1, self._judge,
                                              callback_group=MutuallyExclusiveCallbackGroup())
        if cfg.truth_topic:
            if cfg.truth_topic == TWIN_TRUTH_TOPIC:
                self.get_logger().info(f"publishing the twin's ground-truth object position on "
                                       f"{cfg.truth_topic} (recorded beside perception's)")
            else:
                self.get_logger().warning(f"publishing the twin's ground-truth object position on "
                                          f"{cfg.truth_topic} (no perception in the loop)")
            self._truth = self.create_publisher(ObjectState, cfg.truth_topic, 10)
            self.create_timer(0.1, self._publish_truth, callback_group=MutuallyExclusiveCallbackGroup())

    # --- reset ------------------------------------------------------------------------------------------

    def _trials_for(self, task: str) -> Any:
        from recipe_sim.trials import TwinTrials

        twin = self._get_twin()
        if twin is None:
            raise RuntimeError("the twin is not running")
        if self._trials is None or self._trials.twin is not twin or self._trials.task_cfg.name != task:
            self._trials = TwinTrials(twin, task, self._randomization)
        return self._trials

    def _on_reset(self, req: ResetTrial.Request, res: ResetTrial.Response) -> ResetTrial.Response:
        task = req.task or self.cfg.task
        try:
            with self._lock:
                trials = self._trials_for(task)
                seed = int(req.seed) if req.seed >= 0 else self._next_seed
                self._next_seed = seed + 1
            setup = trials.draw(seed)
            park = PARK_POSE.copy()
            park[2] = trials.rest_z + 0.002
            trials.twin.set_object_pose(park)
            reached = all(self._move_to(q, trials.twin) for q in trials.path_to_ready())
            if not reached:
                # a failed episode can leave an arm caught (e.g. a hand pressed below the table's edge)
                # where no commanded move frees it; on the twin the harness places it, and says so
                self.get_logger().warning("the robot did not reach the ready pose through the driver; "
                                          "placing it there (twin only)")
                trials.twin.place_robot(trials.ready_q)
                reached = self._move_to(trials.ready_q, trials.twin)
            if not reached:
                raise RuntimeError("the robot did not reach the ready pose (is the driver running and "
                                   "not e-stopped?)")
            with self._lock:
                trials.start(setup)
                self._trial_id += 1
                self._t0 = time.monotonic()
            goal, final_goal = trials.goal, trials.final_goal
            res.success = True
            res.trial_id = self._trial_id
            res.seed = seed
            res.object_name = trials.spec.name
            res.object_position = Point(x=float(setup.object_pose[0]), y=float(setup.object_pose[1]),
                                        z=float(setup.object_pose[2]))
            res.goal = [] if goal is None else [float(v) for v in goal]
            res.final_goal = [] if final_goal is None else [float(v) for v in final_goal]
            res.time_limit = float(trials.time_limit_s)
            res.message = f"trial {self._trial_id} ({task}, seed {seed}) started"
            self.get_logger().info(res.message)
        except Exception as exc:  # reported to the caller, the node keeps serving
            res.success = False
            res.message = f"reset failed: {exc}"
            self.get_logger().error(res.message)
        return res

    def _move_to(self, q_goal: np.ndarray, twin: Any, rate_hz: float = 50.0) -> bool:
        """Command a straight joint-space move to ``q_goal`` at ``ready_speed`` rad/s; True once within
        ``ready_tolerance`` of it (max over the arm joints)."""
        q0 = np.asarray(twin.ground_truth()["q"], dtype=np.float64)
        dist = float(np.max(np.abs(q_goal - q0)))
        duration = max(dist / self._speed, 0.5)
        t0 = time.monotonic()
        n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
        deadline = t0 + duration + 3.0
        while time.monotonic() < deadline:
            s = min((time.monotonic() - t0) / duration, 1.0)
            self._publish_command(q0 + s * (q_goal - q0))
            q = np.asarray(twin.ground_truth()["q"])
            if s >= 1.0 and float(np.max(np.abs(q[:n_arm] - q_goal[:n_arm]))) < self._tolerance:
                return True
            time.sleep(1.0 / rate_hz)
        return False

    def _publish_command(self, q: np.ndarray) -> None:
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = self._names
        msg.position = [float(v) for v in q]
        self._cmd.publish(msg)

    def _publish_truth(self) -> None:
        twin = self._get_twin()
        if twin is None:
            return
        p = twin.object_position()
        msg = ObjectState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = WORLD
        msg.position = Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))
        msg.confidence = 1.0
        msg.status = ObjectState.STATUS_TRACKING
        self._truth.publish(msg)

    # --- judging ----------------------------------------------------------------------------------------

    def _judge(self) -> None:
        with self._lock:
            trials = self._trials
            if trials is None or self._trial_id == 0:
                return
            verdict = trials.judge()
            trial_id, elapsed = self._trial_id, time.monotonic() - self._t0
        msg = TrialStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.trial_id = trial_id
        msg.task = trials.task_cfg.name
        msg.state = STATES[verdict.state]
        msg.elapsed = float(elapsed)
        if verdict.success_step is not None:
            msg.time_to_success = float(verdict.success_step * trials.policy_dt)
        msg.message = verdict.message
        self._status.publish(msg)
