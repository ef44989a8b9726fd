"""The main job: deploy a committed policy on the MuJoCo twin through the whole ROS stack and count successes.

    ./dev demo                                   # grasp_reach, the committed policy, 5 trials
    ./dev demo --task grasp_reach --policy <ref> --trials 10 --processes
    ./dev demo --mode scripted                   # the old smoke run: scripted joint targets, no policy

The stack is ``recipe_bringup.stack.deploy_stack`` (the same declaration ``deploy.launch.py`` uses): the
twin (the GR1 driver on its MuJoCo backend + the trial service), perception (third-view depth -> object
centre) and the policy node. No registry has ROS 2 ``launch``, so the nodes run either composed in this
process (one MultiThreadedExecutor, the default) or one process each under ``recipe_bringup.supervisor``
(``--processes``). Then ``recipe_bringup.trials`` runs the trials: reset on the twin, start the policy,
the twin's own success detector gives the verdict. Per-trial lines, a summary (JSON + PNG), a rosbag2
MCAP bag per trial and MP4s of the third-view depth camera go to ``runs/demo/<time>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from recipe_bringup.stack import StackOptions, deploy_stack, load_deploy_defaults
from recipe_common import robot_spec
from recipe_common.cameras import camera_table
from recipe_common.paths import config_dir, config_path, workspace_dir
from recipe_common.ros.process import freeze_startup_objects
from recipe_common.ros.shutdown import RosRunner
from recipe_common.tasks import TASK_NAMES, TASKS

CAMERA_TOPICS = tuple(cam.topics().depth for cam in camera_table().values())


def _stack_args(procs: list[Any]) -> list[str]:
    args = ["--ros-args"]
    for proc in procs:
        for f in proc.params_files():
            args += ["--params-file", str(config_path(f))]
    return args


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU use of each stack process between ``start()`` and ``stop()``, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(p) for k, p in pids.items()}

    def stop(self) -> dict[str, float]:
        dt = max(time.monotonic() - self.t0, 1e-9)
        out = {}
        for k, p in self.pids.items():
            try:
                out[k] = round(100.0 * (cpu_seconds(p) - self.c0[k]) / dt, 1)
            except OSError:
                continue
        return out


# With one process per node, this process is the trials harness (trial client, bag recorder, videos): its CPU
# is reported beside the stack's (23% of a core in a 20-trial generalist run: not negligible on 2 cores).
HARNESS = "trials harness"


class Stack:
    """The deploy stack up, either composed in this process or one process per entry (supervised)."""

    def __init__(self, procs: list[Any], ros: RosRunner, processes: bool, log_dir: Path,
                 interrupt: threading.Event) -> None:
        self.procs, self.ros, self.processes = procs, ros, processes
        self.interrupt = interrupt
        self.supervisor: Any = None
        self.log_dir = log_dir

    def start(self, probe_node: Any) -> None:
        if self.processes:
            from recipe_bringup.supervisor import GraphProbe, Supervisor

            self.supervisor = Supervisor(self.procs, config_dir(), self.log_dir, interrupt=self.interrupt)
            self.supervisor.start(GraphProbe(probe_node))
            return
        for proc in self.procs:
            for node in proc.build():
                self.ros.add(node, stop=getattr(node, "shutdown", None))

    def check(self) -> None:
        if self.supervisor is not None:
            self.supervisor.check()

    def pids(self) -> dict[str, int]:
        """Process of each stack entry and of this one, the trials harness (one process when composed)."""
        if self.supervisor is None:
            return {"stack (composed)": os.getpid()}
        pids = {c.decl.key: c.proc.pid for c in self.supervisor.children if c.proc is not None}
        return {**pids, HARNESS: os.getpid()}


    def stop(self) -> None:
        if self.supervisor is not None:
            codes = self.supervisor.stop()
            bad = {k: c for k, c in codes.items() if c not in (0, None)}
            if bad or self.supervisor.killed:
                print(f"[demo] process exit codes: {codes}; needed SIGKILL: {self.supervisor.killed}",
                      file=sys.stderr)


def run_trials_demo(a: argparse.Namespace) -> int:
    from recipe_bringup.trials import TrialError, TrialsClient, TrialsInterrupted

    defaults = load_deploy_defaults()
    task_defaults = defaults.tasks[a.task]
    policy = a.policy or task_defaults.policy
    if not policy:
        print(f"[demo] no committed policy for task {a.task!r} yet (config/deploy.yaml); pass --policy",
              file=sys.stderr)
        return 2
    opts = StackOptions(task=a.task, backend="sim", hand=a.hand, policy=policy,
                        sim_object=a.object or task_defaults.sim_object, object_source=a.object_source,
                        camera_rate_hz=defaults.camera_rate_hz, twin_cpus=defaults.twin_cpus)
    procs = deploy_stack(opts)
    trials = a.trials if a.trials is not None else defaults.trials
    video = defaults.video_trials if a.video_trials is None else a.video_trials
    out = a.out or workspace_dir() / "runs" / "demo" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    mode = "one process per node" if a.processes else "composed in one process"
    print(f"[demo] task={a.task} policy={policy} object={opts.sim_object} object_source={a.object_source} "
          f"trials={trials} ({mode}) -> {out}", flush=True)
    recovered = recover_unfinished_bags(out if a.out is not None else out.parent)
    code = 0
    interrupted = threading.Event()
    args = ["demo", *(_stack_args(procs) if not a.processes else [])]
    try:
        with RosRunner(args, num_threads=6) as ros:
            ros.signals.on_request(interrupted.set)
            stack = Stack(procs, ros, a.processes, out / "logs", interrupted)
            client = ros.add(TrialsClient(ros.executor, record_depth=False, stop=interrupted))
            ros.start()
            try:
                if recovered:
                    print(f"[demo] recovered unfinished bags of an earlier run: {recovered}")
                t0 = time.monotonic()
                stack.start(client)
                if not a.processes:
                    freeze_startup_objects()  # the composed nodes, as run_nodes does for a node process
                client.wait_ready()
                print(f"[demo] stack up in {time.monotonic() - t0:.1f} s: " + ", ".join(p.key for p in procs),
                      flush=True)
                code = _run_and_report(a, stack, client, opts, policy, defaults, trials, video, out,
                                       interrupted)
            finally:
                stack.stop()
    except TrialsInterrupted:
        print("[demo] interrupted", file=sys.stderr)
    except TrialError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        code = 1
    except Exception as exc:
        if interrupted.is_set():
            print("[demo] interrupted", file=sys.stderr)
        else:
            print(f"[demo] failed: {exc}", file=sys.stderr)
            code = getattr(exc, "code", 1)
    return code


def _run_and_report(a: argparse.Namespace, stack: Stack, client: Any, opts: StackOptions, policy: str,
                    defaults: Any, trials: int, video: int, out: Path, interrupted: threading.Event) -> int:
    from recipe_bringup.trials import run_trials

    meta = {"task": a.task, "policy": policy, "object": opts.sim_object, "object_source": a.object_source,
            "processes": a.processes, "seed": a.seed}
    cpu = CpuMeter(stack.pids())
    summary = run_trials(client, trials, a.seed if a.seed is not None else defaults.seed, out,
                         record=not a.no_bag, video_trials=video, meta=meta,
                         echo=lambda s: (stack.check(), print(s, flush=True)))
    summary["cpu_percent_of_one_core"] = cpu.stop()
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if interrupted.is_set() or not summary["trials"]:
        print(f"[demo] interrupted; {summary['trials']} trials finished, summary in {out}")
        return 0
    lat = summary["observation_to_command_ms"]
    print(f"[demo] {summary['successes']}/{summary['trials']} trials succeeded "
          f"({100 * summary['success_rate']:.0f}%); policy {summary['policy_rate_hz'] or 0:.2f} Hz, "
          f"commands {summary['command_rate_hz'] or 0:.2f} Hz, observation->command p50 "
          f"{lat['p50'] or float('nan'):.0f} ms, p99 {lat['p99'] or float('nan'):.0f} ms")
    print(f"[demo] summary {out / 'summary.json'} (+ .png); bags and videos in {out}")
    return 0


def recover_unfinished_bags(root: Path) -> list[str]:
    """Bags an earlier run left unclosed (killed) under ``root``: rebuilt so they read again."""
    from recipe_bringup.bag_recorder import find_unfinished_bags, recover_bag

    if not root.is_dir():
        return []
    done = []
    for bag in find_unfinished_bags(root):
        try:
            recover_bag(bag)
            done.append(str(bag))
        except Exception as exc:  # a bag we cannot rebuild stays as it is; say so
            print(f"[demo] could not recover {bag}: {exc}", file=sys.stderr)
    return done


# --------------------------------------------------------------------------- the scripted smoke run


def _state_monitor() -> Any:
    """A node keeping the joint-state count, the last state and the latest depth frames (scripted mode)."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState

    class StateMonitor(Node):
        def __init__(self) -> None:
            super().__init__("embedded_monitor")
            self.states = 0
            self.last_state: JointState | None = None
            self.depth: dict[str, Image] = {}
            self.create_subscription(JointState, "/joint_states", self._on_state, 10)
            for t in CAMERA_TOPICS:
                self.create_subscription(Image, t, lambda m, t=t: self.depth.__setitem__(t, m), 2)

        def _on_state(self, msg: JointState) -> None:
            self.states += 1
            self.last_state = msg

    return StateMonitor()


def _save_depth_png(images: dict[str, Any], path: Path) -> Path | None:
    """Both cameras' last depth frames side by side (what the twin publishes)."""
    if not images:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(5 * len(images), 3.2), squeeze=False)
    for ax, (topic, img) in zip(axes[0], sorted(images.items()), strict=True):
        depth = np.frombuffer(bytes(img.data), np.uint16).reshape(img.height, img.width) / 1000.0
        im = ax.imshow(np.where(depth > 0, depth, np.nan), cmap="viridis")
        ax.set_title(topic.split("/")[2] + " depth (m)")
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def run_scripted(a: argparse.Namespace) -> int:
    """The driver on the twin plays a task's scripted joint targets (no policy, no verdict)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, JointState

    from recipe_bringup.bag_recorder import BagRecorder
    from recipe_bringup.scripted_commander import ScriptedCommander
    from recipe_gr1_driver.node import DriverNode
    from recipe_sim.model.scene import load_scene
    from recipe_sim.scripted_play import play_commands

    out = a.out or workspace_dir() / "runs" / "embedded" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    obj = a.object or TASKS[a.task].default_object
    print(f"[embedded] task={a.task} object={obj} hand={a.hand} -> {out}", flush=True)
    commands = play_commands(a.task, load_scene().spawn_xy, seed=0, object_name=obj, hand=a.hand)
    overrides = [Parameter("backend", value="sim"), Parameter("hand", value=a.hand),
                 Parameter("sim_object", value=obj), Parameter("camera_rate_hz", value=5.0)]
    counts: dict[str, int] = {}
    with RosRunner(["embedded", "--ros-args", "--params-file", str(config_path("driver.yaml"))]) as ros:
        driver = DriverNode(parameter_overrides=overrides)
        ros.add(driver, stop=driver.shutdown)
        if not a.no_bag:
            topics: dict[str, type] = {"/joint_states": JointState, "/joint_commands": JointState,
                                       "/diagnostics": DiagnosticArray}
            for t in CAMERA_TOPICS:
                topics[t] = Image
                topics[t.replace("image_rect_raw", "camera_info")] = CameraInfo
            bag = BagRecorder(out / "bag", topics)
            ros.add(bag, stop=lambda: counts.update(bag.close()))
        commander = ros.add(ScriptedCommander(commands))
        monitor = ros.add(_state_monitor())
        ros.start()
        t0 = time.monotonic()
        ros.signals.wait(a.duration)
        elapsed = time.monotonic() - t0
        q = driver.backend.read_state()[0][: 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE]
        target = commands[min(commander.sent, len(commands)) - 1][: len(q)]
        print(f"[embedded] joint_states {monitor.states / elapsed:.0f} Hz over {elapsed:.1f} s, "
              f"{commander.sent} commands; arm tracking max |error| at the end "
              f"{float(np.max(np.abs(q - target))):.3f} rad")
        png = _save_depth_png(monitor.depth, out / "depth.png")
        if png:
            print(f"[embedded] depth snapshot: {png}")
    if counts:
        print(f"[embedded] bag {out / 'bag'}: " + ", ".join(f"{t}={c}" for t, c in counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("trials", "scripted"), default="trials")
    p.add_argument("--task", default="grasp_reach", choices=TASK_NAMES)
    p.add_argument("--policy", default="", help="policy ref (default: config/deploy.yaml's for the task)")
    p.add_argument("--trials", type=int, default=None, help="trial count (default: config/deploy.yaml)")
    p.add_argument("--seed", type=int, default=None, help="first trial seed (default: config/deploy.yaml)")
    p.add_argument("--object", default="", help="the twin's object (default: config/deploy.yaml's)")
    p.add_argument("--object-source", choices=("perception", "truth"), default="perception",
                   help="truth: the twin publishes its true object position instead of perception (debug)")
    p.add_argument("--processes", action="store_true", help="one process per node under the supervisor")
    p.add_argument("--video-trials", type=int, default=None)
    p.add_argument("--hand", default=robot_spec.DEFAULT_HAND, choices=sorted(robot_spec.HANDS))
    p.add_argument("--out", type=Path, default=None, help="output dir (default runs/demo/<time>)")
    p.add_argument("--no-bag", action="store_true", help="do not record rosbag2 MCAP bags")
    p.add_argument("--duration", type=float, default=12.0, help="scripted mode: seconds to run")
    a = p.parse_args(argv)
    if a.trials is not None and a.trials < 1:
        p.error("--trials must be >= 1")
    return run_scripted(a) if a.mode == "scripted" else run_trials_demo(a)


if __name__ == "__main__":
    sys.exit(main())
