"""The /autotune action server (recipe_interfaces/action/Autotune): a thin rclpy shell over run_autotune.

One goal at a time. Live goals (no real_data_path) play the calibration sequences through the driver
topics (live.LiveRecorder); a cancel during that motion stops sending calibration targets, holds the
current pose and ramps home slowly. A cancel during the search stops between batches/generations and
writes nothing. Parameters (``--ros-args -p``): ``config_path`` (default: the workspace
config/autotune.yaml) and ``output_dir`` (default ``autotune_out``; each goal gets its own subfolder).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from recipe_common.ros.executor import MultiThreadedExecutor
from recipe_interfaces.action import Autotune

from . import calibration
from .clearance import ClearanceChecker
from .config import load_config
from .job import AutotuneJob, load_job_recording, plan_job
from .live import LiveRecorder
from .recording import Recording
from .tuner import run_autotune


class AutotuneServer(Node):
    def __init__(self) -> None:
        super().__init__("autotune")
        self.declare_parameter("config_path", "")
        self.declare_parameter("output_dir", "autotune_out")
        config_path = self.get_parameter("config_path").value or None
        self.config = load_config(config_path)
        self.output_dir = Path(self.get_parameter("output_dir").value)
        self._busy = threading.Lock()
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
        if self._busy.locked():
            self.get_logger().warning("rejecting goal: an autotune run is in progress")
            return GoalResponse.REJECT
        try:
            self._plan(goal)
        except ValueError as exc:
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

    def _record_live(self, goal_handle, job: AutotuneJob, out: Path) -> Recording | None:
        cal = self.config.calibration
        targets = calibration.generate_sequences(
            cal, self.config.hand, job.seed, job.num_sequences, self.clearance
        )
        total = job.population + self.config.search.refinement_evaluations
        self._feedback(goal_handle, Autotune.Feedback.STAGE_RECORDING, 0, total, float("nan"))
        home = calibration.home_pose(cal, self.config.hand)
        rec = self.recorder.record(
            targets,
            home,
            max_velocity=cal.return_home_max_velocity,
            should_stop=lambda: goal_handle.is_cancel_requested,
            on_sequence=lambda k, n: self.get_logger().info(f"recorded calibration sequence {k}/{n}"),
        )
        if rec is not None:
            rec.save(out / "recording.npz")
        return rec

    def _execute(self, goal_handle):
        result = Autotune.Result()
        with self._busy:
            try:
                job = self._plan(goal_handle.request)
                goal_id = bytes(goal_handle.goal_id.uuid).hex()[:8]
                out = self.output_dir / time.strftime(f"%Y%m%d-%H%M%S-seed{job.seed}-{goal_id}")
                out.mkdir(parents=True, exist_ok=True)
                if job.live:
                    real = self._record_live(goal_handle, job, out)
                    if real is None:
                        goal_handle.canceled()
                        result.message = "cancelled during calibration motion: held the pose, " + (
                            "then returned home"
                            if self.recorder.returned_home
                            else "still holding it (the way home is not clear of the table/body)"
                        )
                        return result
                else:
                    real = load_job_recording(job, self.config.hand)
                res = run_autotune(
                    self.config,
                    real,
                    groups=job.groups,
                    population=job.population,
                    seed=job.seed,
                    feedback_cb=lambda *a: self._feedback(goal_handle, *a),
                    should_stop=lambda: goal_handle.is_cancel_requested,
                    out_dir=out,
                )
            except Exception as exc:  # any failure must end the goal, with the reason
                self.get_logger().error(f"autotune failed: {type(exc).__name__}: {exc}")
                goal_handle.abort()
                result.success, result.message = False, f"{type(exc).__name__}: {exc}"
                return result
            result.success, result.message = res.success, res.message
            result.best_mse, result.untuned_mse = res.best_mse, res.untuned_mse
            result.random_search_mse = res.random_search_mse
            result.overlay_path = str(res.overlay_path.resolve()) if res.overlay_path else ""
            result.report_path = str(res.report_path.resolve()) if res.report_path else ""
            if res.cancelled:
                goal_handle.canceled()
            else:
                goal_handle.succeed()
                self.get_logger().info(res.message)
            return result


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = AutotuneServer()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()


if __name__ == "__main__":
    main()
