"""Measure the driver's JointState rate and command-to-state latency with the sim backend.

    python src/recipe_gr1_driver/benchmarks/driver_latency.py [--seconds 5] [--steps 20] [--camera-rate 15]

Starts the driver (``python -m recipe_gr1_driver.node`` with config/driver.yaml) in a subprocess
with the MuJoCo twin, then from this process:

* rate: /joint_states messages per second over ``--seconds``, and the inter-arrival jitter;
* latency: after streaming a hold pose (so the new-source ramp is over), step the left elbow by
  ``--step`` rad and keep streaming the new target at 100 Hz; latency is the time from the first
  publish of the step until a received /joint_states shows the elbow past 10% of the step.
  It includes both DDS hops, the control tick, the rate limiter, one physics step and the PD
  response of the twin, i.e. what a policy would see.
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
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 90 + 5)
os.environ.setdefault("ROS_LOG_DIR", str(ROOT / "log" / "gr1_driver_benchmark"))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402

ELBOW = "left_elbow_pitch_joint"


class Probe:
    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("driver_latency_probe", context=self.context)
        self.lock = threading.Lock()
        self.arrivals: list[float] = []
        self.elbow: list[tuple[float, float]] = []
        self.images = 0
        self.node.create_subscription(JointState, "/joint_states", self._on_state, 100)
        self.node.create_subscription(Image, "/camera/head/depth/image_rect_raw", self._on_image, 2)
        self.pub = self.node.create_publisher(JointState, "/joint_commands", 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_state(self, msg: JointState) -> None:
        now = time.monotonic()
        q = msg.position[list(msg.name).index(ELBOW)]
        with self.lock:
            self.arrivals.append(now)
            self.elbow.append((now, q))

    def _on_image(self, msg: Image) -> None:
        with self.lock:
            self.images += 1

    def command(self, q: float) -> None:
        msg = JointState()
        msg.name, msg.position = [ELBOW], [q]
        self.pub.publish(msg)

    def stream(self, q: float, seconds: float, rate: float = 100.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.command(q)
            time.sleep(1.0 / rate)

    def latest_elbow(self) -> float | None:
        with self.lock:
            return self.elbow[-1][1] if self.elbow else None

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def measure_step(probe: Probe, q0: float, step: float, timeout: float = 2.0) -> float:
    """Seconds from the first publish of q0+step until the state has moved 10% of the step.

    Measured from the elbow's position at publish time (under gravity it holds a little off q0).
    """
    threshold = probe.latest_elbow() + 0.1 * step
    t0 = time.monotonic()
    probe.command(q0 + step)
    next_pub = t0 + 0.01
    while time.monotonic() - t0 < timeout:
        with probe.lock:
            hits = [t for t, q in probe.elbow[-20:] if t >= t0 and (q - threshold) * np.sign(step) > 0]
        if hits:
            return hits[0] - t0
        if time.monotonic() >= next_pub:
            probe.command(q0 + step)
            next_pub += 0.01
        time.sleep(0.0005)
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="rate measurement window")
    ap.add_argument("--steps", type=int, default=20, help="number of latency steps")
    ap.add_argument("--step", type=float, default=0.2, help="step size in rad")
    ap.add_argument("--camera-rate", type=float, default=15.0, help="depth camera rate (0 = off)")
    ap.add_argument("--camera-size", default="0x0", help="WxH depth image size (0x0 = the twin's D435 size)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.camera_size.lower().split("x"))

    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([*(str(ROOT / "src" / p) for p in ("recipe_common", "recipe_sim",
                                                                             "recipe_gr1_driver")),
                                         env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "recipe_gr1_driver.node", "--ros-args",
           "--params-file", str(ROOT / "config/driver.yaml"), "-p", f"camera_rate_hz:={args.camera_rate}",
           "-p", f"camera_width:={width}", "-p", f"camera_height:={height}"]
    log = open(ROOT / "log" / "driver_latency_driver.log", "w")
    driver = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    probe = Probe()
    try:
        t_start = time.monotonic()
        while probe.latest_elbow() is None:
            if driver.poll() is not None or time.monotonic() - t_start > 60:
                print("driver did not come up; see log/driver_latency_driver.log", file=sys.stderr)
                return 1
            time.sleep(0.05)
        up = time.monotonic() - t_start
        print(f"driver up after {up:.1f} s (sim backend, cameras {args.camera_rate} Hz, {args.camera_size})")

        time.sleep(1.0)
        with probe.lock:
            probe.arrivals.clear()
            probe.images = 0
        time.sleep(args.seconds)
        with probe.lock:
            arr = np.array(probe.arrivals)
            images = probe.images
        gaps = np.diff(arr) * 1e3
        print(f"JointState rate: {len(arr) / args.seconds:.1f} Hz over {args.seconds:.0f} s "
              f"(inter-arrival p50 {np.median(gaps):.2f} ms, p99 {np.percentile(gaps, 99):.2f} ms, "
              f"max {gaps.max():.2f} ms)")
        print(f"head depth image rate: {images / args.seconds:.1f} Hz")

        q0 = 0.3
        probe.stream(q0, 2.0)  # past the new-source ramp, settled
        lat = []
        for i in range(args.steps):
            step = args.step if i % 2 == 0 else -args.step
            base = q0 if i % 2 == 0 else q0 + args.step
            lat.append(measure_step(probe, base, step))
            probe.stream(base + step, 0.4)  # settle on the new pose, same source
        lat_ms = np.array(lat) * 1e3
        ok = lat_ms[np.isfinite(lat_ms)]
        print(f"command-to-state latency (10% of a {args.step} rad elbow step, n={len(ok)}/{len(lat_ms)}): "
              f"p50 {np.median(ok):.1f} ms, p90 {np.percentile(ok, 90):.1f} ms, "
              f"min {ok.min():.1f} ms, max {ok.max():.1f} ms")
        return 0
    finally:
        probe.close()
        if driver.poll() is None:
            driver.send_signal(signal.SIGINT)
            try:
                driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                driver.terminate()
                driver.wait(timeout=10)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
