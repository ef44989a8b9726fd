"""``train``: PPO specialists (asymmetric actor-critic, rsl-rl-lib) for one task and object grouping.

Examples::

    ros2 run recipe_sim train --task grasp_reach --group single:can_small --iterations 300
    ros2 run recipe_sim train --task grasp_reach --group shape            # 3 specialists in sequence
    ros2 run recipe_sim train --task handover --task-aware-init --overlay autotune_best.yaml
    ros2 run recipe_sim train --task grasp_reach --resume runs/grasp_reach/<stamp>/model_299.pt \
        --iterations 200

A multi-group grouping (shape, mix, single) trains every group in sequence, or only ``--subtask i``;
each group gets its own sub-directory of ``--out``. See recipe_sim.ppo.training for the run layout.

``--all-subtasks`` also evaluates each specialist from the ready pose (seed 1000, ``--eval-episodes`` per
object, nominal + each ``--eval-randomization`` file + pushes), packages it with ``--package``, writes
``summary.md``/``summary.json`` and can be run again after an interruption: finished sub-tasks are
skipped, an interrupted one continues from its newest checkpoint (recipe_sim.ppo.all_subtasks)::

    ros2 run recipe_sim train --task grasp_reach --group mix --all-subtasks --demo-init --no-task-aware-init \
        --randomization config/randomization_low_noise.yaml --iterations 800 --package
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from pathlib import Path

from recipe_common.paths import workspace_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task", default="grasp_reach", help="task name from config/tasks.yaml (default grasp_reach)"
    )
    p.add_argument(
        "--group",
        default=None,
        help="object grouping: all | shape | mix | single | single:<object> | a task grouping "
        "(default: the task's object_group in tasks.yaml)",
    )
    p.add_argument(
        "--subtask",
        type=int,
        default=None,
        help="train only group i of a multi-group grouping (default: all groups in sequence)",
    )
    p.add_argument("--num-envs", type=int, default=None, help="parallel envs (default: the profile's)")
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="PPO iterations to run (more iterations when resuming; default: the profile's)",
    )
    p.add_argument(
        "--time-budget-min",
        type=float,
        default=None,
        help="stop each specialist after this many minutes of training (checkpoint is saved)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=Path, default=None, help="PPO YAML (default config/ppo.yaml)")
    p.add_argument("--profile", default="default", help="profile in the PPO YAML: default | tiny | ...")
    init = p.add_mutually_exclusive_group()
    init.add_argument(
        "--task-aware-init",
        dest="task_aware_init",
        action="store_true",
        default=None,
        help="start episodes from recorded task states (tasks.yaml init_states, else the "
        "packaged scripted states of the task)",
    )
    init.add_argument(
        "--no-task-aware-init",
        dest="task_aware_init",
        action="store_false",
        help="always start from the ready pose, even if tasks.yaml names init states",
    )
    p.add_argument(
        "--init-states", type=Path, default=None, help="init-states .npz (implies --task-aware-init)"
    )
    p.add_argument(
        "--overlay", type=Path, default=None, help="autotune ModelParams YAML applied to the robot"
    )
    p.add_argument(
        "--command-path",
        type=Path,
        default=None,
        help="driver parameter YAML (e.g. config/driver.yaml): demonstrate and train through the driver's "
        "command path (start ramp, step and velocity caps), as the robot will move (evaluation stays direct)",
    )
    p.add_argument(
        "--demo-init",
        action="store_true",
        help="before PPO, clone the scripted expert's successful episodes into the actor (grasp_reach; "
        "settings in the profile's demo_init section)",
    )
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<task>/<timestamp>)")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="checkpoint to continue from (iteration count, env steps and optimizer continue)",
    )
    p.add_argument("--no-randomization", action="store_true", help="train without domain randomization")
    p.add_argument(
        "--randomization",
        type=Path,
        default=None,
        help="randomization YAML (default config/randomization.yaml = paper Table IV; items the file "
        "leaves out keep the paper's values)",
    )
    p.add_argument("--no-export", action="store_true", help="skip the TorchScript/ONNX export at the end")
    p.add_argument(
        "--all-subtasks",
        action="store_true",
        help="train, evaluate (and with --package, package) every group of --group in turn, resumably; "
        "default --out runs/<task>/<group>",
    )
    p.add_argument("--eval-episodes", type=int, default=64, help="--all-subtasks: episodes per object")
    p.add_argument(
        "--eval-randomization",
        type=Path,
        nargs="+",
        default=None,
        help="--all-subtasks: randomization files to evaluate under (default config/randomization_low_noise"
        ".yaml and config/randomization_degrees.yaml), besides nominal and pushes",
    )
    p.add_argument(
        "--package",
        action="store_true",
        help="--all-subtasks: package each evaluated specialist into recipe_sim/data/specialists/",
    )
    p.add_argument("--verbose", action="store_true", help="print rsl-rl's full per-iteration report")
    return p


def default_run_dir(task: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return workspace_dir() / "runs" / task / stamp


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Heavy imports after argument parsing, so --help and bad flags answer at once.
    from recipe_common.config import ConfigError
    from recipe_sim.ppo.checkpoint import CheckpointError
    from recipe_sim.ppo.config import load_config
    from recipe_sim.ppo.envs import (
        driver_command_paths,
        randomization_config,
        resolve_init_states,
        resolve_subtasks,
    )
    from recipe_sim.ppo.progress import TrainingProgress, format_stats
    from recipe_sim.ppo.training import train_specialist

    try:
        config = load_config(args.config, args.profile).with_overrides(
            num_envs=args.num_envs, iterations=args.iterations
        )
        subtasks = resolve_subtasks(args.task, args.group, args.subtask)
        init_path, no_init = resolve_init_states(args.task, args.task_aware_init, args.init_states)
        if args.overlay is not None and not args.overlay.is_file():
            raise FileNotFoundError(f"--overlay {args.overlay}: no such file")
        if args.command_path is not None:
            driver_command_paths(args.command_path)  # the driver's own validation, before any work
        if args.resume is not None and (len(subtasks) > 1 or args.all_subtasks):
            raise ValueError("--resume continues one specialist: add --subtask to pick its group "
                             "(--all-subtasks resumes by itself: run the same command again)")
        if args.all_subtasks and args.subtask is not None:
            raise ValueError("--all-subtasks trains every group: leave out --subtask")
        if (args.package or args.eval_randomization) and not args.all_subtasks:
            raise ValueError("--package and --eval-randomization go with --all-subtasks")
        if args.eval_episodes < 1:
            raise ValueError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
        if args.demo_init and args.resume is not None:
            raise ValueError("--demo-init starts a new specialist; it cannot be combined with --resume")
        if args.demo_init and config.demo_init is None:
            raise ValueError(f"--demo-init: profile {config.profile!r} has no demo_init section")
        if args.time_budget_min is not None and not args.time_budget_min > 0:
            raise ValueError(f"--time-budget-min must be > 0, got {args.time_budget_min}")
        randomization = randomization_config(not args.no_randomization, path=args.randomization)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2

    if args.all_subtasks:
        return _all_subtasks(args, config, subtasks, init_path, no_init, randomization)
    out = args.out
    if out is None:
        out = args.resume.resolve().parent if args.resume is not None else default_run_dir(args.task)
    out_existed = out.exists()
    for sub in subtasks:
        run_dir = out if len(subtasks) == 1 else out / sub.slug
        existed = run_dir.exists()
        print(
            f"train: {sub.task} on {sub.label} {list(sub.objects)}: {config.iterations} iterations x "
            f"{config.num_envs} envs x {config.num_steps_per_env} steps -> {run_dir}",
            file=sys.stderr,
        )
        req = _request(
            args, sub, config, run_dir, randomization, init_path, no_init,
            resume=args.resume,
            time_budget_s=None if args.time_budget_min is None else 60.0 * args.time_budget_min,
        )
        try:
            with TrainingProgress(config.iterations, desc=sub.label) as progress:
                result = train_specialist(req, on_iteration=progress, log=progress.write)
        except (CheckpointError, ConfigError, ValueError, FileNotFoundError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"train: error: {message}", file=sys.stderr)
            _remove_failed_run(run_dir, existed)
            if not out_existed:
                _remove_failed_run(out, existed=False)
            return 1
        last = result.history[-1] if result.history else None
        summary = format_stats(last) if last else "no iterations"
        print(f"train: done {sub.label}: {summary}\n  checkpoint {result.checkpoint}", file=sys.stderr)
        if result.export_max_abs_diff is not None:
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in result.export_max_abs_diff.items())
            print(f"  exported {run_dir / 'exported'} (max |diff| vs torch actor: {diffs})", file=sys.stderr)
    return 0


def _request(args, sub, config, run_dir, randomization, init_path, no_init, **extra):
    """The TrainRequest the command line asks for (one sub-task, or the base of --all-subtasks)."""
    from recipe_sim.ppo.training import TrainRequest

    return TrainRequest(
        sub=sub,
        config=config,
        run_dir=run_dir,
        seed=args.seed,
        randomization=randomization,
        randomization_file=None if args.randomization is None else args.randomization.resolve(),
        iterations=config.iterations,
        overlay=args.overlay,
        init_states=init_path,
        no_init_states=no_init,
        demo_init=args.demo_init,
        command_path=None if args.command_path is None else args.command_path.resolve(),
        export=not args.no_export,
        verbose=args.verbose,
        **extra,
    )


def _remove_failed_run(run_dir: Path, existed: bool) -> None:
    """Delete a run directory this invocation created if the run failed before writing anything of use.

    Such a directory holds at most TensorBoard event files; left behind, it looks like a run and
    ``latest_checkpoint`` fails on it. A directory that existed before, or holds anything else (a
    checkpoint, collected demonstrations), stays.
    """
    if existed or not run_dir.is_dir():
        return
    if any(f.is_file() and not f.name.startswith("events.out.tfevents") for f in run_dir.rglob("*")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"train: removed {run_dir} (no checkpoint was written)", file=sys.stderr)


def _all_subtasks(args, config, subtasks, init_path, no_init, randomization) -> int:
    from recipe_common.config import ConfigError
    from recipe_sim.ppo.all_subtasks import EvalPlan, run_all_subtasks, standard_conditions
    from recipe_sim.ppo.checkpoint import CheckpointError
    from recipe_sim.ppo.progress import TrainingProgress

    grouping = subtasks[0].grouping
    out = args.out or workspace_dir() / "runs" / args.task / grouping.replace(":", "_")
    try:
        conditions = standard_conditions(args.eval_randomization, args.randomization)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    base = _request(args, subtasks[0], config, out, randomization, init_path, no_init)
    print(f"train: all {len(subtasks)} sub-tasks of {args.task} {grouping} -> {out}", file=sys.stderr)

    def progress(sub, iterations):
        return TrainingProgress(iterations, desc=sub.label)

    try:
        run_all_subtasks(subtasks, base, out, EvalPlan(conditions, episodes=args.eval_episodes),
                         package=args.package, log=lambda m: print(m, file=sys.stderr), progress=progress)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 1
    print(f"train: summary in {out / 'summary.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
