"""``autotune``: the /autotune job from the command line.

Data sources (pick one):
  --real PATH             a recorded .npz (Recording.save) or a rosbag2 MCAP directory; its held-out
                          sequences are the marked ones (autotune's recordings), else the last
                          validation.num_sequences sequences;
  --hidden-overlay PATH   simulate "the real robot": the twin with this hidden overlay (``default`` or
                          ``issue19``: built-in ones) plays the designed calibration motion (no ROS);
  --live                  play the designed motion through the driver topics (needs a running driver).
Writes the overlay YAML, report.md/json and the overlay PNGs to --out and prints the MSE summary.
SIGINT (Ctrl-C) or SIGTERM ends the run within about a second (the robot held where it is in --live
mode), writes nothing and exits with 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import AutotuneConfig, ConfigError, load_config
from .job import CLI_FIELDS, AutotuneJob, load_job_recording, plan_job
from .recording import Recording, RecordingError
from .stopping import Cancelled
from .synthetic import DEFAULT_HIDDEN_OVERLAY, ISSUE19_HIDDEN_OVERLAY, record_on_twin
from .tuner import run_autotune

BUILTIN_OVERLAYS = {"default": DEFAULT_HIDDEN_OVERLAY, "issue19": ISSUE19_HIDDEN_OVERLAY}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="autotune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--real", type=Path, help="recorded .npz or rosbag2 MCAP directory")
    src.add_argument(
        "--hidden-overlay", help="ModelParams YAML of the simulated 'real robot', or default / issue19"
    )
    src.add_argument("--live", action="store_true", help="record through /joint_commands and /joint_states")
    p.add_argument("--config", type=Path, default=None, help="autotune YAML (default: config/autotune.yaml)")
    p.add_argument("--groups", default="", help="comma-separated parameter groups (default: all)")
    p.add_argument("--population", type=int, default=0, help="random-search candidates K (0: config)")
    p.add_argument("--refinement", type=int, default=None, help="refinement candidates (default: config)")
    p.add_argument("--num-sequences", type=int, default=0, help="training sequences N (0: config)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="encoder noise std (rad) for --hidden-overlay")
    p.add_argument("--save-recording", type=Path, default=None, help="also save the recording (.npz)")
    p.add_argument("--no-plots", action="store_true", help="skip the tracking overlay PNGs")
    p.add_argument("--out", type=Path, default=Path("autotune_out"))
    return p


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (every stage polls it) instead of killing the process mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _record_live(
    config: AutotuneConfig, job: AutotuneJob, stop: threading.Event
) -> tuple[Recording | None, dict[str, Any] | None]:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from recipe_common.ros.executor import MultiThreadedExecutor

    from . import calibration
    from .clearance import ClearanceChecker
    from .design import design_for_job
    from .live import LiveRecorder

    cal = config.calibration
    clearance = ClearanceChecker(config.hand, cal.clearance_margin_m)
    print("autotune: designing the calibration motion", flush=True)
    design = design_for_job(config, job, clearance, stop.is_set)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # our handlers: hold the robot, then exit
    node = rclpy.create_node("autotune_cli")
    recorder = LiveRecorder(
        node, config.hand, cal.command_rate_hz, clearance=clearance, approach_waypoints=cal.approach_waypoints
    )
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        rec = recorder.record_design(
            design.train,
            design.heldout,
            calibration.home_pose(cal, config.hand),
            max_velocity=cal.return_home_max_velocity,
            should_stop=stop.is_set,
            shutting_down=stop.is_set,
        )
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return rec, (design.criteria() if rec is not None else None)


def _record_twin(
    args: argparse.Namespace, config: AutotuneConfig, job: AutotuneJob, stop: threading.Event
) -> tuple[Recording, dict[str, Any]]:
    from .clearance import ClearanceChecker
    from .design import design_for_job

    cal = config.calibration
    overlay = BUILTIN_OVERLAYS.get(args.hidden_overlay, args.hidden_overlay)
    print("autotune: designing the calibration motion", flush=True)
    design = design_for_job(config, job, ClearanceChecker(config.hand, cal.clearance_margin_m), stop.is_set)
    train = record_on_twin(
        design.train, config.hand, overlay, cal.command_rate_hz, args.noise, job.seed, stop.is_set
    )
    held = None
    if len(design.heldout):
        held = record_on_twin(
            design.heldout, config.hand, overlay, cal.command_rate_hz, args.noise, job.seed + 1
        )
    return Recording.combine(train, held), design.criteria()


def _recording(
    args: argparse.Namespace, config: AutotuneConfig, job: AutotuneJob, stop: threading.Event
) -> tuple[Recording | None, dict[str, Any] | None]:
    if args.real:
        return load_job_recording(job, config.hand, config.validation.num_sequences), None
    if args.live:
        return _record_live(config, job, stop)
    return _record_twin(args, config, job, stop)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()
    with stop_on_signals(stop):
        try:
            config = load_config(args.config)
            groups = [g.strip() for g in args.groups.split(",") if g.strip()]
            job = plan_job(
                config, groups, args.population, args.num_sequences, args.seed, args.real or "", CLI_FIELDS
            )
            real, design = _recording(args, config, job, stop)
            if real is None:
                raise Cancelled
            if args.save_recording:
                real.save(args.save_recording)
            train, held = real.split(config.validation.num_sequences)
            print(f"autotune: fitting {len(train)} training sequences, {len(held)} held out", flush=True)

            def feedback(stage: str, done: int, total: int, best: float) -> None:
                print(f"\r{stage:>14}: {done:4d}/{total} candidates, best MSE {best:.4g}", end="", flush=True)

            res = run_autotune(
                config,
                real,
                groups=job.groups,
                population=job.population,
                seed=job.seed,
                feedback_cb=feedback,
                should_stop=stop.is_set,
                out_dir=args.out,
                refinement_evaluations=args.refinement,
                make_plots=not args.no_plots,
                design=design,
            )
        except Cancelled:
            print(
                "\nautotune: stopped before the search (signal or cancel); nothing written", file=sys.stderr
            )
            return 0
        except (ConfigError, RecordingError, ValueError, FileNotFoundError) as exc:
            print(f"autotune: error: {exc}", file=sys.stderr)
            return 2
    print()
    if res.cancelled:
        print(f"autotune: stopped ({res.message}); nothing written", file=sys.stderr)
        return 0
    print(res.message)
    for warning in res.warnings:
        print(f"warning: {warning}")
    print(f"overlay: {res.overlay_path}\nreport:  {res.report_path}")
    return 0 if res.success else 1


if __name__ == "__main__":
    sys.exit(main())
