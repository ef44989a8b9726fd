"""Record task-aware initial states while a person teleoperates the simulated GR1 over ROS 2.

The person's teleop tool (a VR/hand-tracking retargeter, a joystick mapper, a slider GUI) publishes
``sensor_msgs/JointState`` targets on ``~/joint_targets`` (names + positions in radians, any subset
of robot_spec's actuated joints; hands in radians like the driver). This node steps the MuJoCo twin
in real time at the 10 Hz policy rate with the latest targets, publishes the simulated joint states on
``~/joint_states`` for the teleop tool's feedback, records (q, object pose) every step and writes an
init-states file (source="human") when stopped or when ``duration`` is reached. The paper records
under 30 s of such play per task.
"""

from __future__ import annotations

import argparse
import math
import threading
from pathlib import Path

import mujoco
import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState

from recipe_common import robot_spec
from recipe_common.tasks import TASK_NAMES
from recipe_sim.init_states import InitStates
from recipe_sim.model.scene import load_scene
from recipe_sim.scripted_play import (
    PlayWorld,
    actuated_q,
    make_world,
    object_on_table,
    object_pose,
    place_object,
    reset_robot,
)

POLICY_DT = 0.1


def targets_from_msg(msg: JointState, current: np.ndarray) -> np.ndarray:
    """Merge a JointState target message into the current 26 targets; ValueError names what is wrong."""
    names = list(msg.name)
    pos = list(msg.position)
    if len(names) != len(pos):
        raise ValueError(f"{len(names)} names but {len(pos)} positions")
    order = {n: i for i, n in enumerate(robot_spec.actuated_joint_names())}
    out = current.copy()
    for n, p in zip(names, pos, strict=True):
        if n not in order:
            raise ValueError(f"unknown joint {n!r}")
        if not math.isfinite(p):
            raise ValueError(f"non-finite target for {n}")
        out[order[n]] = p
    return out


class InitStateRecorder(Node):
    def __init__(self, task: str, out: Path, duration: float, object_name: str | None = None) -> None:
        super().__init__("init_state_recorder")
        self.task, self.out, self.duration = task, out, duration
        self.world: PlayWorld = make_world(task, object_name)
        self._lock = threading.Lock()
        self.target = reset_robot(self.world)
        place_object(self.world, load_scene().spawn_xy, 0.0)
        mujoco.mj_forward(self.world.model, self.world.data)
        self.states: list[tuple[np.ndarray, np.ndarray]] = []
        self.rejected = 0
        self.names = robot_spec.actuated_joint_names()
        self.create_subscription(JointState, "~/joint_targets", self._on_targets, 10)
        self.pub = self.create_publisher(JointState, "~/joint_states", 10)
        self.create_timer(POLICY_DT, self._tick)
        self.done = threading.Event()
        self.get_logger().info(f"recording {task} init states to {out} for {duration:.0f} s")

    def _on_targets(self, msg: JointState) -> None:
        try:
            with self._lock:
                self.target = targets_from_msg(msg, self.target)
        except ValueError as e:
            self.rejected += 1
            self.get_logger().error(f"rejected teleop target: {e}")

    def _tick(self) -> None:
        if self.done.is_set():
            return
        w = self.world
        lo, hi = robot_spec.actuated_limits(w.index.hand)
        with self._lock:
            w.data.ctrl[w.index.actuator_ids] = np.clip(self.target, lo, hi)
        mujoco.mj_step(w.model, w.data, nstep=w.nsub)
        q, pose = actuated_q(w), object_pose(w)
        if np.isfinite(q).all() and object_on_table(w, pose):
            self.states.append((np.clip(q, lo, hi), pose))
        msg = JointState(name=self.names, position=q.tolist())
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub.publish(msg)
        if len(self.states) * POLICY_DT >= self.duration:
            self.done.set()

    def save(self) -> Path | None:
        if not self.states:
            self.get_logger().warning("no valid state recorded; nothing written")
            return None
        q = np.stack([s[0] for s in self.states])
        pose = np.stack([s[1] for s in self.states])
        pose[:, 3:] /= np.linalg.norm(pose[:, 3:], axis=1, keepdims=True)
        states = InitStates(task=self.task, hand=self.world.index.hand, source="human", q=q, object_pose=pose,
                            note=f"teleoperated, {len(q) * POLICY_DT:.1f} s")
        return states.save(self.out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Record task-aware initial states from ROS 2 teleop targets.")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of play to record")
    p.add_argument("--object", default=None)
    a, ros_args = p.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = InitStateRecorder(a.task, a.out, a.duration, a.object)
    try:
        while rclpy.ok() and not node.done.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        path = node.save()
        if path:
            print(f"wrote {len(node.states)} states to {path}")
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
