"""Shared test helpers: ROS isolation, a kinematic stand-in twin, a recording backend, processes.

Importing this module sets the ROS environment for the test process (and the subprocesses it
starts, which keep the parent's values): discovery on localhost only, a domain id unique to the
test process, logs under log/.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
TESTS = Path(__file__).resolve().parent
HARNESS = TESTS / "driver_harness.py"

if os.environ.get("RECIPE_DRIVER_TEST_PID") is None:  # the test process; its children inherit
    os.environ["RECIPE_DRIVER_TEST_PID"] = str(os.getpid())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 90 + 5)
    os.environ["ROS_LOG_DIR"] = str(ROOT / "log" / "gr1_driver_tests")
os.environ.setdefault("MUJOCO_GL", "egl")

from recipe_common import robot_spec  # noqa: E402
from recipe_common.node_process import NodeProcess  # noqa: E402
from recipe_gr1_driver.backends.base import Backend, BackendStatus  # noqa: E402

ACTUATED = robot_spec.actuated_joint_names()
STATE_NAMES = robot_spec.state_joint_names()
N_ACT = len(ACTUATED)
RECORD_COLUMNS = 1 + N_ACT  # monotonic time, 26 targets


class KinematicTwin:
    """A tiny stand-in with SimTwin's API: first-order tracking, synthetic depth frames.

    Lets the node and the sim backend's real-time thread be tested without MuJoCo; the real
    twin is exercised in test_driver_sim.py.
    """

    def __init__(self, hand: str = "fourier", overlay: Any = None, object_name: str | None = None,
                 render: bool = False, seed: int = 0, tau: float = 0.05) -> None:
        self.hand = hand
        self.joint_names = robot_spec.state_joint_names(hand)
        self.actuated_names = robot_spec.actuated_joint_names()
        self.dt = 1.0 / 120.0
        self.time = 0.0
        self._tau = tau
        lo, hi = robot_spec.actuated_limits(hand)
        self._q = np.clip(np.zeros(N_ACT), lo, hi)
        self._dq = np.zeros(N_ACT)
        self._target = self._q.copy()
        self.targets_seen = 0

    def set_targets(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        assert q.shape == (N_ACT,) and np.all(np.isfinite(q))
        self._target = q.copy()
        self.targets_seen += 1

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            a = self.dt / self._tau
            new = self._q + a * (self._target - self._q)
            self._dq = (new - self._q) / self.dt
            self._q = new
            self.time += self.dt

    def advance(self, seconds: float) -> None:
        self.step(max(1, round(seconds / self.dt)))

    def _full(self, act: np.ndarray, offset: bool = True) -> np.ndarray:
        from recipe_gr1_driver.backends.gr1_mapping import coupled_from_actuated

        return np.concatenate([act, coupled_from_actuated(act[14:], self.hand, offset)])

    def joint_positions(self) -> np.ndarray:
        return self._full(self._q)

    def joint_velocities(self) -> np.ndarray:
        return self._full(self._dq, offset=False)

    def joint_efforts(self) -> np.ndarray:
        return self._full(10.0 * (self._target - self._q), offset=False)

    def render_depth(self, camera: str) -> np.ndarray:
        h, w = (48, 64) if camera == "head_depth" else (30, 40)
        img = np.linspace(0.3, 2.0, h * w, dtype=np.float32).reshape(h, w)
        img[0, 0] = np.nan
        img[0, 1] = 50.0  # beyond depth_max_m -> 0
        return img

    def camera_info(self, camera: str) -> dict:
        h, w = (48, 64) if camera == "head_depth" else (30, 40)
        return {"width": w, "height": h, "fx": 50.0, "fy": 51.0, "cx": w / 2, "cy": h / 2,
                "frame_id": f"{camera}_optical_frame"}


class RecordingBackend(Backend):
    """Wraps a backend and appends every write_targets call to a binary file (time + 26 values).

    This is the instrument for "never reaches the backend unclamped": the file holds exactly what
    the wrapped backend received.
    """

    def __init__(self, inner: Backend, path: str | Path) -> None:
        super().__init__(inner.hand)
        self.inner = inner
        self.name = inner.name
        self._file = open(path, "ab", buffering=0)
        self._lock = threading.Lock()

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.inner.stop()
        with self._lock:
            self._file.close()

    def read_state(self):
        return self.inner.read_state()

    def write_targets(self, q: np.ndarray) -> None:
        row = np.concatenate([[time.monotonic()], np.asarray(q, dtype=np.float64)])
        with self._lock:
            if not self._file.closed:
                self._file.write(row.tobytes())
        self.inner.write_targets(q)

    def status(self) -> BackendStatus:
        return self.inner.status()

    def __getattr__(self, item: str) -> Any:  # camera methods of the wrapped sim backend
        if item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)


def read_record(path: str | Path) -> np.ndarray:
    """(N, 27) rows written so far (a partially written last row is dropped)."""
    raw = np.fromfile(path, dtype=np.float64) if Path(path).exists() else np.zeros(0)
    n = len(raw) // RECORD_COLUMNS
    return raw[: n * RECORD_COLUMNS].reshape(n, RECORD_COLUMNS)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DriverProcess(NodeProcess):
    """The driver node in a subprocess (driver_harness.py), recording the targets its backend receives."""

    def __init__(self, tmp: Path, twin: str = "fake", params: dict[str, Any] | None = None,
                 backend: str = "sim") -> None:
        self.record = tmp / "targets.bin"
        args = [sys.executable, str(HARNESS), "--twin", twin, "--record", str(self.record), "--ros-args",
                "-p", f"backend:={backend}"]
        for k, v in (params or {}).items():
            args += ["-p", f"{k}:={_ros_value(v)}"]
        env = os.environ.copy()
        paths = [ROOT / "src/recipe_common", ROOT / "src/recipe_sim", ROOT / "src/recipe_gr1_driver", TESTS]
        env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
        super().__init__(args, tmp / "driver.log", env=env, cwd=ROOT)


def _ros_value(v: Any, in_list: bool = False) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_ros_value(x, True) for x in v) + "]"
    if isinstance(v, str) and in_list:
        return json.dumps(v)  # YAML flow sequences need quotes around "tcp/127.0.0.1:0"
    return str(v)


class RosClient:
    """An rclpy node in its own context, spun in a background thread, recording what it hears."""

    def __init__(self, name: str = "driver_test_client") -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool
        from std_srvs.srv import SetBool

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.states: list[tuple[float, JointState]] = []
        self.diagnostics: list[DiagnosticArray] = []
        self._lock = threading.Lock()
        self.node.create_subscription(JointState, "/joint_states", self._on_state, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.cmd_pub = self.node.create_publisher(JointState, "/joint_commands", 10)
        self.estop_pub = self.node.create_publisher(Bool, "/estop", 10)
        self.estop_client = self.node.create_client(SetBool, "/estop")
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def collect(self, msg_type: Any, topic: str, depth: int = 10) -> list[Any]:
        """Subscribe to ``topic``; the returned list fills with received messages."""
        got: list[Any] = []
        self.node.create_subscription(msg_type, topic, got.append, depth)
        return got

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # context shut down
            pass

    def _on_state(self, msg: Any) -> None:
        with self._lock:
            self.states.append((time.monotonic(), msg))

    def _on_diag(self, msg: Any) -> None:
        with self._lock:
            self.diagnostics.append(msg)

    def latest_state(self) -> Any:
        with self._lock:
            return self.states[-1][1] if self.states else None

    def states_since(self, t0: float) -> list[tuple[float, Any]]:
        with self._lock:
            return [(t, m) for t, m in self.states if t >= t0]

    def wait_for_state(self, timeout: float = 30.0, driver: DriverProcess | None = None) -> Any:
        """First /joint_states message; gives up early if ``driver`` exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.latest_state() is not None:
                return self.latest_state()
            if driver is not None and not driver.alive():
                return None
            time.sleep(0.05)
        return None

    def command(self, names: list[str], positions: list[float]) -> None:
        from sensor_msgs.msg import JointState

        msg = JointState()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.name, msg.position = list(names), [float(p) for p in positions]
        self.cmd_pub.publish(msg)

    def stream(self, names: list[str], positions: list[float], seconds: float, rate: float = 50.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.command(names, positions)
            time.sleep(1.0 / rate)

    def estop_service(self, engage: bool, timeout: float = 10.0) -> Any:
        from std_srvs.srv import SetBool

        assert self.estop_client.wait_for_service(timeout_sec=timeout), "/estop service not available"
        fut = self.estop_client.call_async(SetBool.Request(data=engage))
        deadline = time.monotonic() + timeout
        while not fut.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fut.done(), "/estop service call timed out"
        return fut.result()

    def diag_value(self, key: str) -> str | None:
        with self._lock:
            diags = list(self.diagnostics)
        for arr in reversed(diags):
            for st in arr.status:
                for kv in st.values:
                    if kv.key == key:
                        return kv.value
        return None

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)  # out of the wait set before the node's handles are destroyed
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def position_of(msg: Any, name: str) -> float:
    return float(msg.position[list(msg.name).index(name)])


def wait_until(pred, timeout: float, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(period)
    return bool(pred())
