"""Streams a task's scripted joint-target trajectory to the driver, as the policy node will.

Until a trained policy runs in the deploy stack, this node stands in for it: it plays the commands of
one scripted play episode (recipe_sim.scripted_play) on ``/joint_commands`` at the 10 Hz policy rate,
then holds the last targets. It exercises the same path a policy's commands take (topic, safety
filter, backend).
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from recipe_common import robot_spec


class ScriptedCommander(Node):
    def __init__(self, commands: np.ndarray, topic: str = "/joint_commands", rate_hz: float = 10.0) -> None:
        super().__init__("scripted_commander")
        commands = np.asarray(commands, np.float64)
        shape_ok = commands.ndim == 2 and commands.shape[1] == robot_spec.ACTION_DIM
        if not shape_ok or not np.isfinite(commands).all():
            raise ValueError(f"commands must be finite (T, {robot_spec.ACTION_DIM}), got {commands.shape}")
        self.commands = commands
        self.sent = 0
        self._names = robot_spec.actuated_joint_names()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = self.create_publisher(JointState, topic, qos)
        self.create_timer(1.0 / rate_hz, self._tick)

    @property
    def finished(self) -> bool:
        return self.sent >= len(self.commands)

    def _tick(self) -> None:
        q = self.commands[min(self.sent, len(self.commands) - 1)]
        msg = JointState(name=self._names, position=q.tolist())
        msg.header.stamp = self.get_clock().now().to_msg()
        # After the last command keep streaming it: the driver's watchdog would hold otherwise.
        self._pub.publish(msg)
        self.sent += 1
