"""The /autotune action server (recipe_interfaces/action/Autotune): a thin rclpy shell over run_autotune.

One goal at a time. A goal is validated before it is accepted (job.plan_job: every field against bounds
from config/autotune.yaml); a rejected goal is logged with the field and its allowed range. Live goals
(no real_data_path) design the calibration motion (design.py), then play the training and held-out
sequences through the driver topics (live.LiveRecorder); a cancel during that motion stops sending
calibration targets, holds the current pose and ramps home slowly. A cancel at any other stage ends the
goal within about a second and writes nothing.

SIGINT and SIGTERM stop the server within about a second with exit code 0: a running goal ends
(aborted, the robot held where it is), then the node and the ROS context are shut down cleanly, which
removes the Fast DDS shared-memory files. Parameters (``--ros-args -p``): ``config_path`` (default: the
workspace config/autotune.yaml) and ``output_dir`` (default ``autotune_out``; each goal gets its own
subfolder).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from recipe_common.ros.executor import MultiThreadedExecutor
from recipe_interfaces.action import Autotune

from . import calibration
from .clearance import ClearanceChecker
from .config import load_config
from .design import design_for_job
from .job import AutotuneJob, JobError, load_job_recording, plan_job
from .live import LiveRecorder
from .stopping import Cancelled
from .tuner import AutotuneResult, run_autotune

STOP_GRACE_S = 1.5  # how long shutdown waits for a running goal to end and report


class AutotuneServer(Node):
    def __init__(self) -> None:
        super().__init__("autotune")
        self.declare_parameter("config_path", "")
        self.declare_parameter("output_dir", "autotune_out")
        config_path = self.get_parameter("config_path").value or None
        self.config = load_config(config_path)
        self.output_dir = Path(self.get_parameter("output_dir").value)
        self._busy = threading.Lock()  # held while a goal executes
        self._shutdown = threading.Event()  # set on SIGINT/SIGTERM: every stage ends, the robot is held
        cal = self.config.calibration
        self.clearance = ClearanceChecker(self.config.hand, cal.clearance_margin_m)
        self.recorder = LiveRecorder(
            self,
            self.config.hand,
            cal.command_rate_hz,
            callback_group=MutuallyExclusiveCallbackGroup(),
            clearance=self.clearance,
            approach_waypoints=cal.approach_waypoints,
        )
        self._server = ActionServer(
            self,
            Autotune,
            "autotune",
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )
        self.get_logger().info(f"/autotune ready (groups {self.config.space.groups})")

    # ---- shutdown ----
    def request_shutdown(self) -> None:
        """End any running goal at its next check (about a second); no new goal is accepted."""
        self._shutdown.set()

    def wait_idle(self, timeout: float) -> bool:
        """True once no goal executes (waits up to ``timeout`` s)."""
        if self._busy.acquire(timeout=max(0.0, timeout)):
            self._busy.release()
            return True
        return False

    # ---- goal handling ----
    def _plan(self, goal) -> AutotuneJob:
        return plan_job(
            self.config,
            list(goal.parameter_groups),
            int(goal.population_size),
            int(goal.num_sequences),
            int(goal.seed),
            goal.real_data_path,
        )

    def _on_goal(self, goal) -> GoalResponse:
        if self._shutdown.is_set():
            self.get_logger().warning("rejecting goal: the server is shutting down")
            return GoalResponse.REJECT
        if self._busy.locked():
            self.get_logger().warning("rejecting goal: an autotune run is in progress")
            return GoalResponse.REJECT
        try:
            self._plan(goal)
        except JobError as exc:
            self.get_logger().warning(f"rejecting goal: {exc}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, _goal_handle) -> CancelResponse:
        return CancelResponse.ACCEPT

    def _feedback(self, goal_handle, stage: str, done: int, total: int, best: float) -> None:
        fb = Autotune.Feedback()
        fb.stage, fb.candidates_evaluated, fb.candidates_total = stage, int(done), int(total)
        fb.best_mse = float(best) if np.isfinite(best) else float("nan")
        goal_handle.publish_feedback(fb)

    def _execute(self, goal_handle):
        result = Autotune.Result()
        # two goals accepted at the same moment: the second ends at once instead of waiting for the first
        if not self._busy.acquire(blocking=False):
            goal_handle.abort()
            result.message = "another autotune run is in progress"
            return result
        try:
            return self._run_goal(goal_handle, result)
        finally:
            self._busy.release()

    def _run_goal(self, goal_handle, result):
        def should_stop() -> bool:
            return goal_handle.is_cancel_requested or self._shutdown.is_set()

        try:
            job = self._plan(goal_handle.request)
            goal_id = bytes(goal_handle.goal_id.uuid).hex()[:8]
            out = self.output_dir / time.strftime(f"%Y%m%d-%H%M%S-seed{job.seed}-{goal_id}")
            design = None
            if job.live:
                real, design = self._record_live(goal_handle, job, out, should_stop)
            else:
                real = load_job_recording(job, self.config.hand, self.config.validation.num_sequences)
            if real is None:
                return self._end_stopped(goal_handle, result, self._live_stop_message())
            res = run_autotune(
                self.config,
                real,
                groups=job.groups,
                population=job.population,
                seed=job.seed,
                feedback_cb=lambda *a: self._feedback(goal_handle, *a),
                should_stop=should_stop,
                out_dir=out,
                design=design,
            )
        except Cancelled:
            return self._end_stopped(goal_handle, result, "stopped before the calibration motion started")
        except Exception as exc:  # any failure must end the goal, with the reason
            self.get_logger().error(f"autotune failed: {type(exc).__name__}: {exc}")
            goal_handle.abort()
            result.success, result.message = False, f"{type(exc).__name__}: {exc}"
            return result
        _fill_result(result, res)
        if res.cancelled:
            return self._end_stopped(goal_handle, result, res.message)
        goal_handle.succeed()
        self.get_logger().info(res.message)
        for warning in res.warnings:
            self.get_logger().warning(warning)
        return result

    def _end_stopped(self, goal_handle, result, message: str):
        """A cancelled goal ends CANCELED; one ended by shutdown is ABORTED (nobody asked to cancel it)."""
        result.success = False
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
            result.message = message if message.startswith("cancelled") else f"cancelled: {message}"
        else:
            goal_handle.abort()
            result.message = f"server shutting down: {message}"
        self.get_logger().info(result.message)
        return result

    def _live_stop_message(self) -> str:
        if self._shutdown.is_set():
            return "stopped during calibration motion: holding the current pose"
        return "cancelled during calibration motion: held the pose, " + (
            "then returned home"
            if self.recorder.returned_home
            else "still holding it (the way home is not clear of the table/body)"
        )

    def _record_live(self, goal_handle, job: AutotuneJob, out: Path, should_stop):
        """Design the motion, play it through the driver; (recording, design criteria) or (None, None)."""
        cal = self.config.calibration
        total = job.population + self.config.search.refinement_evaluations
        self._feedback(goal_handle, Autotune.Feedback.STAGE_DESIGN, 0, total, float("nan"))
        design = design_for_job(self.config, job, self.clearance, should_stop)
        self._feedback(goal_handle, Autotune.Feedback.STAGE_RECORDING, 0, total, float("nan"))
        rec = self.recorder.record_design(
            design.train,
            design.heldout,
            calibration.home_pose(cal, self.config.hand),
            max_velocity=cal.return_home_max_velocity,
            should_stop=should_stop,
            shutting_down=self._shutdown.is_set,
            on_sequence=lambda k, n: self.get_logger().info(f"recorded calibration sequence {k}/{n}"),
        )
        if rec is None:
            return None, None
        out.mkdir(parents=True, exist_ok=True)
        rec.save(out / "recording.npz")
        return rec, design.criteria()


def _fill_result(result, res: AutotuneResult) -> None:
    result.success, result.message = res.success, res.message
    result.best_mse, result.untuned_mse = res.best_mse, res.untuned_mse
    result.random_search_mse = res.random_search_mse
    result.heldout_mse, result.heldout_untuned_mse = res.heldout_mse, res.heldout_untuned_mse
    result.heldout_random_search_mse = res.heldout_random_search_mse
    result.warnings = list(res.warnings)
    result.constrained = [f.name for f in res.fits if f.constrained]
    result.overlay_path = str(res.overlay_path.resolve()) if res.overlay_path else ""
    result.report_path = str(res.report_path.resolve()) if res.report_path else ""


def main(args: list[str] | None = None) -> int:
    # rclpy's own handlers would shut the context down under a running goal, and executor.shutdown()
    # would then wait for that goal forever; here a signal only sets a flag, and the spin loop ends
    # within 0.1 s, stops the goal, then shuts down in order.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    node: AutotuneServer | None = None
    executor = MultiThreadedExecutor(num_threads=4)
    code = 0
    stuck = False
    try:
        node = AutotuneServer()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, OSError) as exc:  # bad configuration or output directory
        print(f"autotune server: {exc}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node.get_logger().info("stopping: a running goal ends now, holding the robot where it is")
            node.request_shutdown()
            if not node.wait_idle(STOP_GRACE_S):
                node.get_logger().warning("a goal did not end within the grace time; shutting down anyway")
                stuck = True
            # let the last result and status reach the client before the node goes
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
        executor.shutdown(timeout_sec=0.5)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stuck:
        # ROS is shut down (its shared memory released); only the goal's worker thread is left, and the
        # interpreter would wait for it at exit. Leave now instead.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
