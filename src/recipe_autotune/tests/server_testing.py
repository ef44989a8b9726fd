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
        # The answer is quick on an idle host; under two trainings beside the suite one took over 15 s.
        return wait(future, 60.0)

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


def wait_until(predicate, timeout: float) -> bool:
    """Poll ``predicate`` until true or ``timeout`` s passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# ---- the long-goal setup of the stop/cancel/signal tests ----
STOP_GROUPS = {
    "gains": {
        "parameters": [
            {"name": "shoulder_kp", "path": "joints.*_shoulder_*_joint.kp", "mode": "scale",
             "range": [0.6, 1.5], "sampling": "log"},
            {"name": "finger_coupling_k", "path": "coupling.?_*_intermediate_joint.k", "mode": "scale",
             "range": [0.85, 1.15]},
        ]
    }
}  # fmt: skip
# Far more work than any timeout of those tests: one batch of 4096 candidates on 3 x 25 s of data.
LONG = {"population_size": 4096, "num_sequences": 0, "seed": 1}


def stop_test_files(tmp: Path) -> tuple[Path, Path, Path]:
    """(folder, config path, recording path): a small config whose search batch is huge, and 3 recorded
    sequences (2 training, 1 held out) of the twin with the default hidden overlay."""
    import copy

    import yaml

    from recipe_autotune import calibration
    from recipe_autotune.config import config_from_dict, default_config_path
    from recipe_autotune.synthetic import DEFAULT_HIDDEN_OVERLAY, record_on_twin

    raw = copy.deepcopy(yaml.safe_load(default_config_path().read_text()))
    raw["groups"] = STOP_GROUPS
    raw["calibration"].update(num_sequences=2, signals=["multisine", "chirp"])
    raw["validation"].update(num_sequences=1)
    raw["search"].update(population=4, refinement_evaluations=4, batch_size=4096)
    config_path = tmp / "autotune.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    config = config_from_dict(raw)
    targets = calibration.generate_sequences(config.calibration, config.hand, seed=0, num_sequences=3)
    rec = record_on_twin(targets, config.hand, DEFAULT_HIDDEN_OVERLAY, seed=0)
    return tmp, config_path, rec.save(tmp / "recording.npz")


def stop_test_server(files: tuple[Path, Path, Path], name: str) -> NodeProcess:
    tmp, config_path, _ = files
    return NodeProcess(
        "recipe_autotune.server",
        {"config_path": str(config_path), "output_dir": str(tmp / f"out_{name}")},
        tmp / f"server_{name}.log",
    )


def shm_segments(pid: int) -> set[Path]:
    """The Fast DDS shared-memory segments (not the port files all participants share) the process has
    mapped or open: its own, and those of the peers it sends to."""
    import re

    names = Path(f"/proc/{pid}/maps").read_text().split()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            names.append(str(fd.readlink()))
        except OSError:  # closed meanwhile
            continue
    return {Path(n) for n in names if re.fullmatch(r"/dev/shm/fast[a-z]+_[0-9a-f]{16}(_el)?", n)}
