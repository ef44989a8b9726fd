"""Helpers for the /autotune server tests: ROS isolation, subprocess nodes, a client node in this process.

Importing this module sets the ROS environment of the test process (inherited by the subprocesses):
discovery on localhost only, a domain id unique to this process, logs under log/.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

if os.environ.get("RECIPE_AUTOTUNE_TEST_PID") is None:  # the test process; children inherit
    os.environ["RECIPE_AUTOTUNE_TEST_PID"] = str(os.getpid())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 90 + 5)
    os.environ["ROS_LOG_DIR"] = str(ROOT / "log" / "autotune_tests")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from recipe_common.node_process import NodeProcess as _NodeProcess  # noqa: E402


def _pythonpath() -> str:
    packages = ("recipe_common", "recipe_sim", "recipe_autotune", "recipe_gr1_driver")
    paths = [ROOT / "src" / p for p in packages]
    return os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")])


class NodeProcess(_NodeProcess):
    """``python -m module --ros-args -p k:=v ...`` in a subprocess; the workspace packages importable."""

    def __init__(self, module: str, params: dict[str, Any], log: Path) -> None:
        args = [sys.executable, "-m", module, "--ros-args"]
        for key, value in params.items():
            args += ["-p", f"{key}:={value}"]
        env = os.environ.copy()
        env["PYTHONPATH"] = _pythonpath()
        super().__init__(args, log, env=env, cwd=ROOT, stop_timeout=15)


class Client:
    """An rclpy node in the test process: the /autotune action client and a tap on the driver topics."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.action import ActionClient
        from sensor_msgs.msg import JointState

        from recipe_common.ros.executor import MultiThreadedExecutor
        from recipe_interfaces.action import Autotune

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("autotune_test_client", context=self.context)
        self.action = ActionClient(self.node, Autotune, "autotune")
        self.Goal = Autotune.Goal
        self.lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.states: list[tuple[float, np.ndarray]] = []
        self.feedback: list[Any] = []
        self.node.create_subscription(JointState, "/joint_commands", self._on_command, 50)
        self.node.create_subscription(JointState, "/joint_states", self._on_state, 50)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_command(self, msg) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), np.asarray(msg.position, dtype=float)))

    def _on_state(self, msg) -> None:
        with self.lock:
            self.states.append((time.monotonic(), np.asarray(msg.position, dtype=float)))

    def wait_for_server(self, timeout: float = 30.0) -> bool:
        return self.action.wait_for_server(timeout_sec=timeout)

    def send(self, **fields: Any):
        goal = self.Goal()
        for key, value in fields.items():
            setattr(goal, key, value)
        future = self.action.send_goal_async(
            goal, feedback_callback=lambda fb: self.feedback.append(fb.feedback)
        )
        return wait(future, 15.0)

    def close(self) -> None:
        self.executor.shutdown()
        self._thread.join(timeout=10)  # the spin thread must be out of the wait set before handles go
        self.executor.remove_node(self.node)
        self.action.destroy()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


def wait(future, timeout: float):
    deadline = time.monotonic() + timeout
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer within {timeout} s")
        time.sleep(0.02)
    return future.result()
