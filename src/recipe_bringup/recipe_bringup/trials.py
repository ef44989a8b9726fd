"""Trials of a task through the whole ROS stack on the twin: reset, run the policy, take the twin's verdict.

    ros2 run recipe_bringup trials --trials 10 --out runs/trials     # against a running stack
    ./dev demo --trials 10                                           # brings the stack up, then this

Each trial: stop the policy; re-initialise perception's tracking; ``/trial/reset`` (robot to the ready
pose through the driver, object at a random spawn pose, the twin's judge armed); wait until perception
tracks the object; ``/policy/start`` with the trial's goal; wait for ``/trial/status`` to turn final
(success, failure or time-out); stop the policy. While it runs, a rosbag2 MCAP bag records what the
policy used and did (joint states, object state, head depth when the policy uses it, joint commands,
PolicyStatus, TrialStatus), and the first trials get an MP4 of the third-view depth camera. A summary
(per-trial verdict, time to success, observation-to-command latency and inference latency percentiles,
achieved policy and command rates) is written as JSON and PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger

from recipe_bringup.bag_recorder import BagRecorder
from recipe_bringup.stack import TWIN_TRUTH_TOPIC
from recipe_common.cameras import HEAD, THIRD_VIEW, camera_table
from recipe_common.frames import WORLD
from recipe_common.paths import workspace_dir
from recipe_common.ros.stamps import stamp_s
from recipe_interfaces.msg import ObjectState, PolicyStatus, TrialStatus
from recipe_interfaces.srv import ResetTrial, StartEpisode

FINAL = {TrialStatus.STATE_SUCCESS: "success", TrialStatus.STATE_FAILURE: "failure",
         TrialStatus.STATE_TIMEOUT: "timeout"}
VIDEO_FPS = 5.0
START_RETRY_S = 5.0  # how long a trial keeps asking the policy node to start while its inputs are stale


class TrialError(RuntimeError):
    """The stack did not do what a trial needs (a service missing or refusing); names the step."""


class TrialsInterrupted(Exception):
    """A stop was requested (Ctrl-C): the current trial is abandoned, nothing more is started."""


@dataclass
class TrialResult:
    trial: int
    seed: int
    outcome: str  # success | failure | timeout | error
    time_to_success_s: float | None
    duration_s: float
    object_name: str = ""
    message: str = ""
    commands: int = 0
    command_rate_hz: float = 0.0
    policy_rate_hz: float = 0.0  # inferences (new chunks) per second while running
    holding_ticks: int = 0
    obs_to_command_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    bag: str = ""
    video: str = ""


class _TrialLog:
    """What the subscriptions saw during one trial."""

    def __init__(self) -> None:
        self.commands: list[float] = []
        self.status: list[PolicyStatus] = []
        self.verdict: TrialStatus | None = None
        self.frames: list[np.ndarray] = []
        self.tracking = False
        self.tracking_after = float("inf")  # ROS time after which perception's TRACKING counts


class TrialsClient(Node):
    """The client side of trials: services of the twin and the policy node, and what they publish."""

    def __init__(self, executor: Any, *, record_depth: bool = False, stop: threading.Event | None = None,
                 node_name: str = "trials_client") -> None:
        super().__init__(node_name)
        self.executor_ref = executor
        self.stop_event = stop or threading.Event()
        self.record_depth = record_depth
        group = ReentrantCallbackGroup()
        self._reset = self.create_client(ResetTrial, "/trial/reset", callback_group=group)
        self._start = self.create_client(StartEpisode, "/policy/start", callback_group=group)
        self._stop = self.create_client(Trigger, "/policy/stop", callback_group=group)
        self._perception_reset = self.create_client(Trigger, "/perception/reset", callback_group=group)
        self._lock = threading.Lock()
        self._log: _TrialLog | None = None
        self._trial_id = -1
        self._video = False
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(TrialStatus, "/trial/status", self._on_verdict, qos, callback_group=group)
        self.create_subscription(PolicyStatus, "/policy/status", self._on_status, qos, callback_group=group)
        self.create_subscription(JointState, "/joint_commands", self._on_command, qos, callback_group=group)
        self.create_subscription(ObjectState, "/object_state", self._on_object, qos, callback_group=group)
        third = camera_table()[THIRD_VIEW].topics()
        self.create_subscription(Image, third.depth, self._on_third_view, qos, callback_group=group)

    # --- subscriptions ------------------------------------------------------------------------------

    def _on_verdict(self, msg: TrialStatus) -> None:
        with self._lock:
            if self._log is not None and msg.trial_id == self._trial_id and msg.state in FINAL:
                self._log.verdict = self._log.verdict or msg

    def _on_status(self, msg: PolicyStatus) -> None:
        with self._lock:
            if self._log is not None:
                self._log.status.append(msg)

    def _on_command(self, msg: JointState) -> None:
        with self._lock:
            if self._log is not None:
                self._log.commands.append(time.monotonic())

    def _on_object(self, msg: ObjectState) -> None:
        stamp = stamp_s(msg.header.stamp)
        with self._lock:
            if self._log is not None and stamp >= self._log.tracking_after:
                self._log.tracking = msg.status == ObjectState.STATUS_TRACKING

    def _on_third_view(self, msg: Image) -> None:
        with self._lock:
            if self._log is None or not self._video or msg.encoding != "16UC1":
                return
            depth = np.frombuffer(bytes(msg.data), np.uint16).reshape(msg.height, msg.width)
            self._log.frames.append(depth[::2, ::2].copy())

    # --- services -----------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if self.stop_event.wait(seconds):
            raise TrialsInterrupted()

    def _call(self, client: Any, request: Any, what: str, timeout: float) -> Any:
        deadline = time.monotonic() + min(timeout, 10.0)
        while not client.service_is_ready():
            if time.monotonic() > deadline:
                raise TrialError(f"{what}: service {client.srv_name} is not available (is the stack up?)")
            self._sleep(0.05)
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TrialError(f"{what}: no answer from {client.srv_name} within {timeout:.0f} s")
            self._sleep(0.01)
        return future.result()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for client in (self._reset, self._start, self._stop):
            while not client.service_is_ready():
                if time.monotonic() > deadline:
                    raise TrialError(f"service {client.srv_name} did not appear within {timeout:.0f} s")
                self._sleep(0.05)

    # --- one trial ----------------------------------------------------------------------------------

    def run_trial(self, index: int, seed: int, out: Path, *, record: bool, video: bool,
                  track_timeout: float = 10.0) -> TrialResult:
        self._call(self._stop, Trigger.Request(), "stop the policy", 10.0)
        log = _TrialLog()
        bag = self._open_bag(out / f"trial_{index:03d}_bag") if record else None
        with self._lock:
            self._log, self._video, self._trial_id = log, video, -1
        t0 = time.monotonic()
        result = TrialResult(index, seed, "error", None, 0.0)
        try:
            reset = self._call(self._reset, ResetTrial.Request(seed=seed), "reset the trial", 60.0)
            if not reset.success:
                raise TrialError(f"reset the trial: {reset.message}")
            result.object_name = reset.object_name
            with self._lock:
                self._trial_id = reset.trial_id
            # Perception starts over on the object where the trial placed it (it may have locked on to the
            # object while the reset moved it): only TRACKING stamped after this counts as ready.
            if self._perception_reset.service_is_ready():
                self._call(self._perception_reset, Trigger.Request(), "re-initialise perception", 10.0)
            with self._lock:
                log.tracking, log.tracking_after = False, self.get_clock().now().nanoseconds * 1e-9
            deadline = time.monotonic() + track_timeout
            while not log.tracking and time.monotonic() < deadline:
                self._sleep(0.05)
            request = StartEpisode.Request(goal=list(reset.goal), final_goal=list(reset.final_goal),
                                           goal_frame=WORLD)
            deadline = time.monotonic() + START_RETRY_S
            while True:  # inputs can be briefly stale on a busy machine: the node says so, try again
                start = self._call(self._start, request, "start the policy", 10.0)
                if start.success or "cannot start" not in start.message or time.monotonic() > deadline:
                    break
                self._sleep(0.1)
            if not start.success:
                raise TrialError(f"start the policy: {start.message}")
            t_start = time.monotonic()
            deadline = t_start + float(reset.time_limit) + 5.0
            while log.verdict is None and time.monotonic() < deadline:
                self._sleep(0.05)
            self._call(self._stop, Trigger.Request(), "stop the policy", 10.0)
            verdict = log.verdict
            if verdict is None:
                result.outcome, result.message = "timeout", "no verdict from /trial/status"
            else:
                result.outcome = FINAL[verdict.state]
                result.message = verdict.message
                if verdict.state == TrialStatus.STATE_SUCCESS:
                    result.time_to_success_s = float(verdict.time_to_success)
            self._fill_stats(result, log, t_start)
        except TrialError as exc:
            result.message = str(exc)
        finally:
            with self._lock:
                self._log = None
            result.duration_s = time.monotonic() - t0
            if bag is not None:
                self._close_bag(bag)
                result.bag = str(bag.path)
        if video and log.frames:
            result.video = str(write_depth_video(log.frames, out / f"trial_{index:03d}_third_view.mp4"))
        return result

    @staticmethod
    def _fill_stats(result: TrialResult, log: _TrialLog, t_start: float) -> None:
        active = (PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_HOLDING)
        running = [s for s in log.status if s.state in active]
        result.holding_ticks = sum(s.state == PolicyStatus.STATE_HOLDING for s in running)
        result.inference_ms = [1e3 * s.inference_latency for s in running
                               if np.isfinite(s.inference_latency)]
        result.obs_to_command_ms = [1e3 * s.observation_to_command for s in running
                                    if np.isfinite(s.observation_to_command)]
        cmds = [t for t in log.commands if t >= t_start]
        result.commands = len(cmds)
        if len(cmds) > 1:
            result.command_rate_hz = (len(cmds) - 1) / (cmds[-1] - cmds[0])
        # Inferences are the ticks whose chunk index moved (it starts at 0 with the episode); the rate is
        # their count of intervals over the time from the first to the last. (Chunks over the span of all
        # status ticks undercounts short episodes: 10 inferences in 2 s of ticks read as 4.7 Hz, not 5.)
        events = []
        index = 0
        for s in running:
            if s.chunk_index != index:
                events.append((stamp_s(s.header.stamp), s.chunk_index))
                index = s.chunk_index
        if len(events) > 1 and events[-1][0] > events[0][0]:
            result.policy_rate_hz = (events[-1][1] - events[0][1]) / (events[-1][0] - events[0][0])

    def _open_bag(self, path: Path) -> BagRecorder:
        topics: dict[str, type] = {"/joint_states": JointState, "/joint_commands": JointState,
                                   "/object_state": ObjectState, "/policy/status": PolicyStatus,
                                   "/trial/status": TrialStatus, TWIN_TRUTH_TOPIC: ObjectState}
        if self.record_depth:
            head = camera_table()[HEAD].topics()
            topics[head.depth] = Image
            topics[head.depth_info] = CameraInfo
        bag = BagRecorder(path, topics, node_name=f"trial_bag_{path.name}")
        self.executor_ref.add_node(bag)
        self._sleep(0.3)  # let its subscriptions match before the trial starts
        return bag

    def _close_bag(self, bag: BagRecorder) -> None:
        bag.close()
        self.executor_ref.remove_node(bag)
        bag.destroy_node()


# --------------------------------------------------------------------------- outputs


def write_depth_video(frames: list[np.ndarray], path: Path, max_m: float = 2.5) -> Path:
    """An MP4 of depth frames (uint16 mm) with a fixed colour scale; near is bright."""
    import imageio.v2 as imageio
    from matplotlib import colormaps

    cmap = colormaps["turbo"]
    with imageio.get_writer(path, fps=VIDEO_FPS, macro_block_size=8) as w:
        for f in frames:
            m = f.astype(np.float32) / 1000.0
            x = np.where(m > 0, 1.0 - np.clip(m / max_m, 0.0, 1.0), 0.0)
            rgb = (cmap(x)[..., :3] * 255).astype(np.uint8)
            rgb[m <= 0] = 0
            w.append_data(rgb)
    return path


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    v = np.asarray(values)
    return {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)), "max": float(v.max())}


def summarise(results: list[TrialResult], meta: dict[str, Any]) -> dict[str, Any]:
    n = len(results)
    ok = [r for r in results if r.outcome == "success"]
    lat = [x for r in results for x in r.obs_to_command_ms]
    inf = [x for r in results for x in r.inference_ms]
    rates = [r.policy_rate_hz for r in results if r.policy_rate_hz > 0]
    cmd_rates = [r.command_rate_hz for r in results if r.command_rate_hz > 0]
    return {
        **meta,
        "trials": n,
        "successes": len(ok),
        "success_rate": len(ok) / n if n else None,
        "time_to_success_s": percentiles([r.time_to_success_s for r in ok if r.time_to_success_s]),
        "observation_to_command_ms": percentiles(lat),
        "inference_ms": percentiles(inf),
        "policy_rate_hz": float(np.mean(rates)) if rates else None,
        "command_rate_hz": float(np.mean(cmd_rates)) if cmd_rates else None,
        "results": [asdict(r) | {"obs_to_command_ms": percentiles(r.obs_to_command_ms),
                                 "inference_ms": percentiles(r.inference_ms)} for r in results],
    }


def plot_summary(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = summary["results"]
    colours = {"success": "tab:green", "failure": "tab:red", "timeout": "tab:orange", "error": "tab:gray"}
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    ax[0].bar([r["trial"] for r in res], [r["time_to_success_s"] or r["duration_s"] for r in res],
              color=[colours[r["outcome"]] for r in res])
    ax[0].set_xlabel("trial")
    ax[0].set_ylabel("time to success (s) / duration")
    ax[0].set_title(f"{summary['task']}: {summary['successes']}/{summary['trials']} succeeded "
                    f"(green success, red failure, orange time-out)", fontsize=9)
    lat = summary["observation_to_command_ms"]
    inf = summary["inference_ms"]
    labels = ["obs->command p50", "p99", "inference p50", "p99"]
    vals = [lat["p50"], lat["p99"], inf["p50"], inf["p99"]]
    ax[1].bar(labels, [v or 0.0 for v in vals], color=["tab:blue", "tab:blue", "tab:purple", "tab:purple"])
    ax[1].set_ylabel("ms")
    ax[1].set_title(f"policy {summary.get('policy_rate_hz') or 0:.2f} Hz, "
                    f"commands {summary.get('command_rate_hz') or 0:.2f} Hz", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_trials(client: TrialsClient, n: int, seed: int, out: Path, *, record: bool, video_trials: int,
               meta: dict[str, Any], echo: Any = print) -> dict[str, Any]:
    """N trials with seeds seed, seed+1, ...; prints one line per trial; writes summary.json/.png."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(n):
        try:
            r = client.run_trial(i, seed + i, out, record=record, video=i < video_trials)
        except TrialsInterrupted:
            echo(f"[trials] interrupted during trial {i + 1}/{n}; {len(results)} finished")
            break
        results.append(r)
        tts = f" in {r.time_to_success_s:.1f} s" if r.time_to_success_s is not None else ""
        lat = percentiles(r.obs_to_command_ms)["p50"]
        echo(f"[trials] trial {i + 1}/{n} (seed {r.seed}, {r.object_name}): {r.outcome.upper()}{tts}"
             + (f"; obs->command p50 {lat:.0f} ms" if lat is not None else "")
             + (f"; {r.message}" if r.outcome != "success" and r.message else ""))
    summary = summarise(results, meta)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_summary(summary, out / "summary.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    """The ``trials`` console script: trials against a stack that is already running."""
    from recipe_common.ros.shutdown import RosRunner

    p = argparse.ArgumentParser(description="Run N trials of the running stack's task on the twin.")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--video-trials", type=int, default=2)
    p.add_argument("--no-bag", action="store_true")
    p.add_argument("--record-depth", action="store_true", help="also record the head depth in the bags")
    a, ros = p.parse_known_args(argv)
    out = a.out or workspace_dir() / "runs" / "trials" / datetime.now().strftime("%Y%m%d-%H%M%S")
    stop = threading.Event()
    try:
        with RosRunner(["trials", *ros]) as runner:
            runner.signals.on_request(stop.set)
            client = runner.add(TrialsClient(runner.executor, record_depth=a.record_depth, stop=stop))
            runner.start()
            client.wait_ready()
            summary = run_trials(client, a.trials, a.seed, out, record=not a.no_bag,
                                 video_trials=a.video_trials, meta={"task": "(running stack)"})
            print(f"[trials] {summary['successes']}/{summary['trials']} succeeded; "
                  f"summary {out / 'summary.json'}")
    except TrialError as exc:
        print(f"trials: {exc}", file=sys.stderr)
        return 1
    except TrialsInterrupted:
        print("trials: interrupted", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
