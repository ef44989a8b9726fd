"""Soak: the driver (sim twin, depth cameras) + a command stream + a bag recorder for N minutes.

    ./dev bench soak [--minutes 10] [--camera-rate 15] [--command-rate 100] [--keep-bag]

One process, as the embedded bringup runs it: the GR1 driver node on the MuJoCo twin publishing
/joint_states at 100 Hz and both depth cameras (848x480 16UC1) at ``--camera-rate``, a commander
streaming 26-joint targets (slow sines within the safe window) at ``--command-rate``, and the rosbag2
MCAP recorder on every one of those topics plus /diagnostics, all spun by one MultiThreadedExecutor
under recipe_common.ros.shutdown.RosRunner (Ctrl-C stops it cleanly and still reports).

Every ``--sample`` s it records the process's RSS, thread count and open file descriptors, the
driver's cumulative published counts, the bag's counts and the twin's dropped time (sim time the
physics skipped because it fell more than 0.25 s behind wall time). At the end it stops the
publishers, lets the recorder drain, and compares what was published with what the bag holds: the
recorder is created before the publishers, so both counts start at the first message.

Reports: growth after warm-up (linear fit of RSS in MB/min, thread and fd ranges), message loss per
topic, dropped time, achieved rates; writes soak.json and soak.png under --out (default
runs/soak/<time>). The bag (about 0.8 MB per camera frame) is deleted afterwards unless --keep-bag.
It does not import the embedded runner: it is built on the driver node and the recorder directly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 90 + 5))
os.environ.setdefault("ROS_LOG_DIR", str(ROOT / "log" / "soak"))
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402

from recipe_bringup.bag_recorder import BagRecorder  # noqa: E402
from recipe_common import robot_spec  # noqa: E402
from recipe_common.cameras import camera_table  # noqa: E402
from recipe_common.paths import config_path, workspace_dir  # noqa: E402
from recipe_common.ros.shutdown import RosRunner  # noqa: E402
from recipe_gr1_driver.node import DriverNode  # noqa: E402

CAMERAS = [cam.topics() for cam in camera_table().values()]


class SineCommander(Node):
    """26 actuated targets: slow sines (0.1-0.4 Hz) over the middle half of each joint's range."""

    def __init__(self, rate_hz: float) -> None:
        super().__init__("soak_commander")
        self.names = robot_spec.actuated_joint_names()
        lo, hi = robot_spec.actuated_limits(robot_spec.DEFAULT_HAND)
        self.mid, self.amp = (lo + hi) / 2, (hi - lo) / 4
        self.freq = np.linspace(0.1, 0.4, len(self.names))
        self.sent = 0
        self._t0 = time.monotonic()
        self._pub = self.create_publisher(JointState, "/joint_commands",
                                          QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._timer = self.create_timer(1.0 / rate_hz, self._tick)

    def _tick(self) -> None:
        t = time.monotonic() - self._t0
        q = self.mid + self.amp * np.sin(2 * np.pi * self.freq * t)
        msg = JointState(name=self.names, position=q.tolist())
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(msg)
        self.sent += 1

    def stop(self) -> None:
        self._timer.cancel()


def proc_status() -> dict[str, float]:
    """RSS (MB), threads and open fds of this process, and its CPU time (s)."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                fields[key] = float(value.split()[0])
    cpu = os.times()
    return {"rss_mb": fields["VmRSS"] / 1024.0, "threads": fields["Threads"],
            "fds": float(len(os.listdir("/proc/self/fd"))), "cpu_s": cpu.user + cpu.system}


def growth(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y per minute."""
    if len(t) < 3 or np.ptp(t) <= 0:
        return 0.0
    return float(np.polyfit(t / 60.0, y, 1)[0])


def plot(samples: list[dict], warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s["t"] for s in samples]) / 60.0
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
    series = [("rss_mb", "RSS (MB)"), ("threads", "threads"), ("fds", "open file descriptors"),
              ("dropped_s", "twin dropped time (s)")]
    for ax, (key, label) in zip(axes.flat, series, strict=True):
        ax.plot(t, [s[key] for s in samples])
        ax.axvline(warmup_s / 60.0, color="grey", ls=":", lw=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    fig.suptitle("soak: driver (sim, cameras) + commands + bag recorder")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--camera-rate", type=float, default=15.0, help="Hz per camera (driver default 15)")
    p.add_argument("--command-rate", type=float, default=100.0, help="Hz of the command stream")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between resource samples")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the growth figures")
    p.add_argument("--out", type=Path, default=None, help="default runs/soak/<time>")
    p.add_argument("--keep-bag", action="store_true", help="keep the recorded bag (about 5 GB per 10 min)")
    p.add_argument("--tracemalloc", action="store_true",
                   help="also print the Python allocation sites that grew most after warm-up (slower)")
    a = p.parse_args()
    if not (a.minutes > 0 and a.sample > 0 and a.camera_rate >= 0 and a.command_rate > 0):
        p.error("--minutes, --sample and --command-rate must be > 0, --camera-rate >= 0")
    out = a.out or workspace_dir() / "runs" / "soak" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    duration = 60.0 * a.minutes
    warmup = min(a.warmup, duration / 3)
    from tqdm import tqdm

    topics: dict[str, type] = {"/joint_states": JointState, "/joint_commands": JointState,
                               "/diagnostics": DiagnosticArray}
    if a.camera_rate > 0:
        for cam in CAMERAS:
            topics[cam.depth] = Image
            topics[cam.depth_info] = CameraInfo
    samples: list[dict] = []
    with RosRunner(["soak", "--ros-args", "--params-file", str(config_path("driver.yaml"))]) as ros:
        # The recorder first: the publishers created after it match it at once (one participant),
        # so "published" and "recorded" count from the same first message.
        bag = BagRecorder(out / "bag", topics)
        ros.add(bag, stop=bag.close)
        driver = DriverNode(parameter_overrides=[Parameter("backend", value="sim"),
                                                 Parameter("camera_rate_hz", value=float(a.camera_rate))])
        ros.add(driver, stop=driver.shutdown)
        commander = ros.add(SineCommander(a.command_rate))
        ros.start()
        t0 = time.monotonic()
        if a.tracemalloc:
            import tracemalloc

            tracemalloc.start(8)
        snapshot = None
        bar = tqdm(total=round(duration), unit="s", desc="soak", file=sys.stderr)
        while not ros.stop_requested:
            now = time.monotonic() - t0
            s = {"t": now, **proc_status(), "dropped_s": driver.backend.dropped_s,
                 "states_published": driver.states_published,
                 "frames_published": driver.camera_frames_published,
                 "commands_sent": commander.sent, "bag": dict(bag.counts)}
            samples.append(s)
            bar.n = min(round(now), bar.total)
            bar.set_postfix(rss=f"{s['rss_mb']:.0f}MB", thr=int(s["threads"]), fds=int(s["fds"]),
                            dropped=f"{s['dropped_s']:.2f}s")
            if a.tracemalloc and snapshot is None and now >= warmup:
                snapshot = tracemalloc.take_snapshot()
            if now >= duration:
                break
            ros.signals.wait(min(a.sample, duration - now))
        bar.close()
        final = tracemalloc.take_snapshot() if snapshot is not None else None  # while still running
        interrupted = ros.stop_requested
        # Stop the publishers, let the recorder take what is in flight, then count.
        commander.stop()
        driver.shutdown()
        time.sleep(2.0)
        elapsed = time.monotonic() - t0
        published = {"/joint_states": driver.states_published, "/joint_commands": commander.sent}
        cameras = driver.camera_frames_published  # frames of all cameras; one image + one info each
        recorded = dict(bag.counts)
        dropped = driver.backend.dropped_s
        penetration = float(driver.backend.status().values.get("limit_penetration_max_rad", "nan"))
    # ---------------------------------------------------------------- report (ROS is stopped here)
    images = sum(recorded.get(c.depth, 0) for c in CAMERAS) if a.camera_rate > 0 else 0
    infos = sum(recorded.get(c.depth_info, 0) for c in CAMERAS) if a.camera_rate > 0 else 0
    loss = {t: published[t] - recorded.get(t, 0) for t in published}
    if a.camera_rate > 0:
        loss["camera images"] = cameras - images
        loss["camera_info"] = cameras - infos
    after = [s for s in samples if s["t"] >= warmup]
    tw = np.array([s["t"] for s in after])

    def span(key: str) -> list[float]:
        return [min(s[key] for s in after), max(s[key] for s in after)] if after else []

    report = {
        "minutes": elapsed / 60.0, "interrupted": interrupted, "camera_rate_hz_set": a.camera_rate,
        "command_rate_hz_set": a.command_rate, "warmup_s": warmup,
        "rates_hz": {"joint_states": published["/joint_states"] / elapsed,
                     "commands": published["/joint_commands"] / elapsed,
                     "camera_frames_per_camera": cameras / max(len(CAMERAS), 1) / elapsed},
        "published": {**published, "camera frames": cameras}, "recorded": recorded, "lost": loss,
        "dropped_s": dropped, "limit_penetration_max_rad": penetration,
        "rss_mb_first_last_after_warmup": [after[0]["rss_mb"], after[-1]["rss_mb"]] if after else [],
        "rss_growth_mb_per_min": growth(tw, np.array([s["rss_mb"] for s in after])),
        "threads_range_after_warmup": span("threads"), "fds_range_after_warmup": span("fds"),
        "cpu_cores": (samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / max(samples[-1]["t"], 1e-9),
        "samples": samples,
    }
    if final is not None:
        growth_sites = final.compare_to(snapshot, "traceback")[:8]
        report["python_growth_after_warmup"] = [
            {"kib": stat.size_diff / 1024, "blocks": stat.count_diff, "where": stat.traceback.format()[-4:]}
            for stat in growth_sites]
        print("Python allocations that grew most after warm-up:")
        for stat in growth_sites:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
                  + " <- ".join(line.strip() for line in stat.traceback.format()[-2::-2][:3]))
    (out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(samples, warmup, out / "soak.png")
    bag_size = sum(f.stat().st_size for f in (out / "bag").iterdir()) / 1e9
    if not a.keep_bag:
        shutil.rmtree(out / "bag")
    rates, rss = report["rates_hz"], report["rss_mb_first_last_after_warmup"] or [float("nan")] * 2
    print(f"\nsoak {elapsed / 60:.1f} min{' (interrupted)' if interrupted else ''}: "
          f"joint_states {rates['joint_states']:.1f} Hz, commands {rates['commands']:.1f} Hz, "
          f"cameras {rates['camera_frames_per_camera']:.1f} Hz each (set {a.camera_rate:g})")
    print(f"  RSS after warm-up {rss[0]:.0f} -> {rss[-1]:.0f} MB (fit {report['rss_growth_mb_per_min']:+.2f} "
          f"MB/min); threads {report['threads_range_after_warmup']}, fds {report['fds_range_after_warmup']}")
    print(f"  twin dropped time {dropped:.3f} s; raw joint limit penetration max {penetration:.3f} rad; "
          f"CPU {report['cpu_cores']:.2f} cores")
    print("  messages lost (published - recorded): " + ", ".join(f"{t} {n}" for t, n in loss.items())
          + f"; bag {bag_size:.2f} GB{' kept' if a.keep_bag else ' (deleted)'}")
    print(f"  wrote {out / 'soak.json'} and {out / 'soak.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
