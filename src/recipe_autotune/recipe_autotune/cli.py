"""``autotune``: the /autotune job from the command line.

Data sources (pick one):
  --real PATH             a recorded .npz (Recording.save) or a rosbag2 MCAP directory;
  --hidden-overlay PATH   simulate "the real robot": the twin with this hidden overlay (``default``: the
                          built-in one) runs the calibration sequences (no ROS needed);
  --live                  play the calibration sequences through the driver topics (needs a running driver).
Writes the overlay YAML, report.md/json and the overlay PNGs to --out and prints the MSE summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import calibration
from .config import ConfigError, load_config
from .job import load_job_recording, plan_job
from .recording import Recording, RecordingError
from .synthetic import DEFAULT_HIDDEN_OVERLAY, record_on_twin
from .tuner import run_autotune


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="autotune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--real", type=Path, help="recorded .npz or rosbag2 MCAP directory")
    src.add_argument("--hidden-overlay", help="ModelParams YAML for the simulated 'real robot', or 'default'")
    src.add_argument("--live", action="store_true", help="record through /joint_commands and /joint_states")
    p.add_argument("--config", type=Path, default=None, help="autotune YAML (default: config/autotune.yaml)")
    p.add_argument("--groups", default="", help="comma-separated parameter groups (default: all)")
    p.add_argument("--population", type=int, default=0, help="random-search candidates K (0: config)")
    p.add_argument("--refinement", type=int, default=None, help="refinement candidates (default: config)")
    p.add_argument("--num-sequences", type=int, default=0, help="calibration sequences N (0: config)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="encoder noise std (rad) for --hidden-overlay")
    p.add_argument("--save-recording", type=Path, default=None, help="also save the recording (.npz)")
    p.add_argument("--no-plots", action="store_true", help="skip the tracking overlay PNGs")
    p.add_argument("--out", type=Path, default=Path("autotune_out"))
    return p


def _record_live(config, job) -> Recording | None:
    import threading

    import rclpy

    from recipe_common.ros.executor import MultiThreadedExecutor

    from .clearance import ClearanceChecker
    from .live import LiveRecorder

    cal = config.calibration
    clearance = ClearanceChecker(config.hand, cal.clearance_margin_m)
    targets = calibration.generate_sequences(cal, config.hand, job.seed, job.num_sequences, clearance)
    rclpy.init()
    node = rclpy.create_node("autotune_cli")
    recorder = LiveRecorder(
        node, config.hand, cal.command_rate_hz, clearance=clearance, approach_waypoints=cal.approach_waypoints
    )
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    stop = threading.Event()
    try:
        return recorder.record(
            targets,
            calibration.home_pose(cal, config.hand),
            max_velocity=cal.return_home_max_velocity,
            should_stop=stop.is_set,
        )
    except KeyboardInterrupt:
        stop.set()
        recorder.safe_stop(calibration.home_pose(cal, config.hand), cal.return_home_max_velocity)
        return None
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        groups = [g.strip() for g in args.groups.split(",") if g.strip()]
        job = plan_job(config, groups, args.population, args.num_sequences, args.seed, args.real or "")
        if args.real:
            real = load_job_recording(job, config.hand)
        elif args.live:
            real = _record_live(config, job)
            if real is None:
                print("cancelled: robot held and returned home", file=sys.stderr)
                return 130
        else:
            from .clearance import ClearanceChecker

            cal = config.calibration
            overlay = DEFAULT_HIDDEN_OVERLAY if args.hidden_overlay == "default" else args.hidden_overlay
            targets = calibration.generate_sequences(
                cal,
                config.hand,
                job.seed,
                job.num_sequences,
                ClearanceChecker(config.hand, cal.clearance_margin_m),
            )
            real = record_on_twin(targets, config.hand, overlay, cal.command_rate_hz, args.noise, job.seed)
        if args.save_recording:
            real.save(args.save_recording)

        def feedback(stage: str, done: int, total: int, best: float) -> None:
            print(f"\r{stage:>14}: {done:4d}/{total} candidates, best MSE {best:.4g}", end="", flush=True)

        res = run_autotune(
            config,
            real,
            groups=job.groups,
            population=job.population,
            seed=job.seed,
            feedback_cb=feedback,
            out_dir=args.out,
            refinement_evaluations=args.refinement,
            make_plots=not args.no_plots,
        )
    except (ConfigError, RecordingError, ValueError, FileNotFoundError) as exc:
        print(f"autotune: error: {exc}", file=sys.stderr)
        return 2
    print()
    print(res.message)
    print(f"overlay: {res.overlay_path}\nreport:  {res.report_path}")
    return 0 if res.success else 1


if __name__ == "__main__":
    sys.exit(main())
