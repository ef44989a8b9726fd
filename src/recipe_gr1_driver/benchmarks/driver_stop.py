"""Stop the driver N times with SIGINT/SIGTERM and check that every stop is clean.

    ./dev bench driver_stop [--runs 100] [--backend gr1|sim] [--signal INT|TERM|alternate] [--stream]

Each run starts ``python -m recipe_gr1_driver.node`` in a subprocess (gr1 backend: against loopback
fakes of the GRX zenoh server and two DexHands started here, publishing joint states at 100 Hz;
sim backend: the MuJoCo twin with cameras), waits until the driver holds the measured pose, streams
joint commands for ``--hold`` s (``--stream``, default on), sends the signal and measures how long
the process takes to exit. A stop passes when the process exits by itself with code 0 within
``--limit`` s (default 2 s) and leaves no Fast DDS file in /dev/shm that no live process uses.
A process still running after 10 s gets SIGTERM, then its stacks are printed (SIGABRT) and it is
killed (recipe_common.node_process), so a hang is reported with its stacks instead of blocking.

Prints one line per run and a summary (pass count, stop time p50/p90/max) and exits 1 if any run
failed. This is the acceptance check for the zenoh shutdown deadlock (about 1 in 6 gr1 stops hung
before the fix; see recipe_gr1_driver/backends/zenoh_session.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TESTS = ROOT / "src" / "recipe_gr1_driver" / "tests"
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 90 + 5)
os.environ.setdefault("ROS_LOG_DIR", str(ROOT / "log" / "gr1_driver_benchmark"))
sys.path.insert(0, str(TESTS))  # the loopback fakes live beside the tests that use them

import numpy as np  # noqa: E402

from recipe_common.node_process import NodeProcess  # noqa: E402

SHM = Path("/dev/shm")
READY = "robot state received"  # the driver's log line once it holds the measured pose


def shm_mapped(pids: list[str] | None = None) -> set[str]:
    """/dev/shm names that the given live processes (default: all) have mapped or open."""
    used: set[str] = set()
    for pid in pids if pids is not None else [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    if "/dev/shm/" in line:
                        used.add(line.rsplit("/dev/shm/", 1)[1].split()[0])
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("/dev/shm/"):
                    used.add(target[len("/dev/shm/"):])
        except OSError:
            continue
    return used


def orphaned_shm(driver_files: set[str], before: set[str]) -> list[str]:
    """Files the driver created (mapped while it ran, absent before it started) that still exist
    and that no live process uses.

    Attributing by what the driver itself created keeps other processes on a shared machine out of
    the count (their Fast DDS files come and go, and the driver also maps their port segments).
    """
    left = {n for n in driver_files - before if (SHM / n).exists()}
    return sorted(left - shm_mapped()) if left else []


class CommandStream:
    """Publishes a slow elbow sine on /joint_commands at 100 Hz from this process's own ROS context."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState

        self.rclpy, self.JointState = rclpy, JointState
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("driver_stop_bench", context=self.context)
        self.pub = self.node.create_publisher(JointState, "/joint_commands", 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._on = threading.Event()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._quit.is_set():
            if self._on.is_set():
                msg = self.JointState()
                msg.name = ["left_elbow_pitch_joint", "R_index_proximal_joint"]
                t = time.monotonic() - t0
                msg.position = [0.4 + 0.3 * np.sin(t), -0.4 + 0.3 * np.sin(t)]
                self.pub.publish(msg)
            self.executor.spin_once(timeout_sec=0.0)
            time.sleep(0.01)

    def streaming(self, on: bool) -> None:
        (self._on.set if on else self._on.clear)()

    def close(self) -> None:
        self._quit.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def driver_args(backend: str, fakes: tuple | None) -> list[str]:
    args = [sys.executable, "-m", "recipe_gr1_driver.node", "--ros-args",
            "--params-file", str(ROOT / "config" / "driver.yaml"), "-p", f"backend:={backend}"]
    if backend == "gr1":
        port, hands = fakes
        params = {
            "gr1_server_ip": "127.0.0.1", "gr1_server_port": port,
            "gr1_zenoh_listen": '["tcp/127.0.0.1:0"]',
            "left_hand_ip": "127.0.0.1", "right_hand_ip": "127.0.0.1",
            "left_hand_ports": f"[{hands[0].ports[0]},{hands[0].ports[1]}]",
            "right_hand_ports": f"[{hands[1].ports[0]},{hands[1].ports[1]}]",
        }
        for k, v in params.items():
            args += ["-p", f"{k}:={v}"]
    return args


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--backend", choices=["gr1", "sim"], default="gr1")
    p.add_argument("--signal", choices=["INT", "TERM", "alternate"], default="INT")
    p.add_argument("--hold", type=float, default=1.0, help="seconds of command stream before the signal")
    p.add_argument("--no-stream", dest="stream", action="store_false", help="no commands while running")
    p.add_argument("--limit", type=float, default=2.0, help="a stop must take at most this many seconds")
    p.add_argument("--logs", type=Path, default=ROOT / "log" / "driver_stop", help="per-run driver logs")
    a = p.parse_args()
    a.logs.mkdir(parents=True, exist_ok=True)

    fakes = None
    server = hands = None
    if a.backend == "gr1":
        from driver_fake_peers import FakeDexHand, FakeGRXServer
        from driver_testing import free_port

        port = free_port()
        server = FakeGRXServer(port)
        hands = (FakeDexHand(), FakeDexHand())
        fakes = (port, hands)
    stream = CommandStream() if a.stream else None
    times: list[float] = []
    failures: list[str] = []
    try:
        for i in range(a.runs):
            sig = {"INT": signal.SIGINT, "TERM": signal.SIGTERM}.get(
                a.signal, signal.SIGINT if i % 2 == 0 else signal.SIGTERM)
            log = a.logs / f"run_{i:03d}.log"
            before = {q.name for q in SHM.iterdir()}
            proc = NodeProcess(driver_args(a.backend, fakes), log, cwd=ROOT)
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline and proc.alive() and READY not in proc.output():
                time.sleep(0.05)
            if not proc.alive():
                failures.append(f"run {i}: driver exited during start-up (code {proc.stop()}), see {log}")
                print(f"run {i:3d}: START FAILED, see {log}", flush=True)
                continue
            if stream:
                stream.streaming(True)
            time.sleep(a.hold)
            driver_files = shm_mapped([str(proc.proc.pid)])
            t0 = time.monotonic()
            proc.proc.send_signal(sig)
            try:
                code = proc.proc.wait(timeout=10.0)
                dt = time.monotonic() - t0
            except subprocess.TimeoutExpired:  # hung: stop() escalates and prints the stacks to the log
                code, dt = None, float("inf")
            if stream:
                stream.streaming(False)
            final = proc.stop()
            code = final if code is None else code
            leftovers = orphaned_shm(driver_files, before)
            ok = code == 0 and dt <= a.limit and not leftovers and proc.escalated is None
            times.append(dt)
            what = signal.Signals(sig).name
            print(f"run {i:3d}: {what:7s} exit {code} after {dt:.3f} s"
                  + (f", escalated to {proc.escalated}" if proc.escalated else "")
                  + (f", /dev/shm leftovers {leftovers}" if leftovers else "")
                  + ("" if ok else f"  FAIL (log {log})"), flush=True)
            if not ok:
                failures.append(f"run {i}: exit {code}, {dt:.3f} s, escalated={proc.escalated}, "
                                f"shm={leftovers}, log {log}")
    finally:
        if stream:
            stream.close()
        if server is not None:
            for h in hands:
                h.close()
            server.close()
    finite = np.array([t for t in times if np.isfinite(t)])
    print(f"\n{a.backend} backend, {a.signal}: {a.runs - len(failures)}/{a.runs} clean stops "
          f"(exit 0 within {a.limit:g} s, no /dev/shm leftovers)")
    if finite.size:
        print(f"stop time p50 {np.percentile(finite, 50):.3f} s, p90 {np.percentile(finite, 90):.3f} s, "
              f"max {finite.max():.3f} s")
    for f in failures:
        print("  " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
