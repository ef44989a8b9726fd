"""``eval``: success rate of a PPO specialist over N episodes per object, under several conditions.

Conditions: ``nominal`` (no domain randomization), ``randomized`` (paper Table IV as configured in
config/randomization.yaml, which includes its random object force), ``pushes`` (no randomization
except random forces on the object; --force-scale / --force-probability make them harsher) and
``disturb-poke`` / ``-pull`` / ``-push`` / ``-drag`` (one scripted disturbance per episode, as the paper's
Fig. 6 shows people poking, pulling, pushing and dragging the object; ``disturbances`` = all four).
Writes ``eval.json`` and ``eval.png`` (bars per object and condition) and, with ``--video N``, an MP4 of
N episodes from the third-view camera.

Example::

    ros2 run recipe_sim eval --checkpoint runs/grasp_reach/<stamp>/model_1999.pt --episodes 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_sim.disturbances import ALL as ALL_DISTURBANCES
from recipe_sim.disturbances import CONDITIONS as DISTURBANCE_CONDITIONS
from recipe_sim.disturbances import expand_conditions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eval",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="model_<it>.pt with its metadata.json")
    p.add_argument("--episodes", type=int, default=20, help="episodes per object and condition (default 20)")
    p.add_argument("--objects", nargs="+", default=None, help="objects to test (default: the checkpoint's)")
    p.add_argument(
        "--conditions",
        nargs="+",
        default=["nominal", "randomized", "pushes"],
        choices=["nominal", "randomized", "pushes", *DISTURBANCE_CONDITIONS, ALL_DISTURBANCES],
        help="nominal, randomized, pushes, disturb-poke/-pull/-push/-drag; disturbances = the four",
    )
    p.add_argument("--num-envs", type=int, default=25, help="parallel envs per object (default 25)")
    p.add_argument("--seed", type=int, default=1000, help="evaluation seed (keep apart from training seeds)")
    p.add_argument("--force-scale", type=float, default=None, help="pushes: force scale (x object mass)")
    p.add_argument("--force-probability", type=float, default=None, help="pushes: probability per interval")
    p.add_argument("--out", type=Path, default=None, help="output directory (default <checkpoint dir>/eval)")
    p.add_argument(
        "--video",
        type=int,
        default=0,
        metavar="N",
        help="also record N episodes of env 0 (first object, first condition) to episodes.mp4",
    )
    p.add_argument(
        "--randomization",
        type=Path,
        default=None,
        help="randomization YAML of the 'randomized' and 'pushes' conditions (default "
        "config/randomization.yaml = paper Table IV)",
    )
    p.add_argument(
        "--start",
        choices=["ready", "init"],
        default="ready",
        help="episode starts: ready = the tasks' ready pose (the deployment start, default); init = the "
        "task-aware initial states the checkpoint was trained with (easier: some start mid-grasp)",
    )
    p.add_argument("--threads", type=int, default=2)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.conditions = expand_conditions(args.conditions)
    problem = _check_args(args)
    if problem:
        print(f"eval: error: {problem}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    try:
        plan = _plan(args)
    except LookupError as exc:
        print(f"eval: error: {_message(exc)}", file=sys.stderr)
        return 1
    start = time.monotonic()
    try:
        summary = _run_conditions(args, plan)
    except ValueError as exc:
        print(f"eval: error: {_message(exc)}", file=sys.stderr)
        return 1
    out = args.out or args.checkpoint.resolve().parent / "eval"  # made once there are results to write
    out.mkdir(parents=True, exist_ok=True)
    _write_report(args, plan, summary, out, time.monotonic() - start)
    if args.video > 0:
        _record_video(args, plan, out / "episodes.mp4")
    overall = ", ".join(f"{c} {100 * (summary[c]['_overall']['success_rate'] or 0):.1f}%" for c in summary)
    print(
        f"eval: overall success: {overall}\n  wrote {out / 'eval.json'} and {out / 'eval.png'}",
        file=sys.stderr,
    )
    return 0


@dataclass(frozen=True)
class _Plan:
    """What the options resolve to before any episode runs: the checkpoint's metadata and the conditions."""

    meta: dict
    init_states: Any
    randomizations: dict  # condition -> RandomizationConfig
    objects: list[str]

    @property
    def task_overrides(self) -> dict:
        from recipe_sim.ppo.envs import recorded_task_overrides

        return recorded_task_overrides(self.meta)


def _plan(args: argparse.Namespace) -> _Plan:
    """Read the checkpoint's metadata and resolve objects and conditions before anything runs; any
    problem (missing or unreadable checkpoint, bad randomization file, unknown object) is a LookupError
    whose message names it."""
    from recipe_common.config import ConfigError
    from recipe_sim.objects import load_catalog
    from recipe_sim.ppo.checkpoint import CheckpointError, read_metadata
    from recipe_sim.ppo.envs import recorded_init_states
    from recipe_sim.ppo.evaluation import condition_randomization, objects_of

    try:
        meta = read_metadata(args.checkpoint)
        init_states = recorded_init_states(meta) if args.start == "init" else None
        rands = {
            c: condition_randomization(c, args.force_scale, args.force_probability, args.randomization)
            for c in args.conditions
        }
        objects = objects_of(meta, args.objects)
        catalog = load_catalog().objects
        unknown = [o for o in objects if o not in catalog]
        if unknown:
            raise KeyError(f"--objects: unknown object(s) {unknown}; objects.yaml has {sorted(catalog)}")
    except (CheckpointError, ConfigError, FileNotFoundError, ValueError) as exc:
        raise LookupError(_message(exc)) from exc
    return _Plan(meta, init_states, rands, objects)


def _run_conditions(args: argparse.Namespace, plan: _Plan) -> dict:
    """Per-condition, per-object success (``summarize``'s table); loader errors become ValueError."""
    from recipe_common.config import ConfigError
    from recipe_sim.ppo.checkpoint import CheckpointError
    from recipe_sim.ppo.evaluation import (
        condition_disturbance,
        deterministic_policy,
        evaluate_objects,
        load_actor,
        summarize,
    )
    from recipe_sim.ppo.export import ExportError

    def policy_for(env):
        actor, _ = load_actor(args.checkpoint, env)
        return deterministic_policy(actor)

    results: dict = {}
    for condition in args.conditions:

        def progress(name, batch, condition=condition):
            print(
                f"eval: {condition:10s} {name:14s} success {100 * batch.success_rate:5.1f}% "
                f"({batch.success.size} episodes)",
                file=sys.stderr,
            )

        try:
            results[condition] = evaluate_objects(
                plan.meta["task"], plan.objects, plan.randomizations[condition], args.episodes, args.num_envs,
                args.seed, policy_for, init_states=plan.init_states, task_overrides=plan.task_overrides,
                threads=args.threads, on_object=progress, disturbance=condition_disturbance(condition),
            )
        except (CheckpointError, ConfigError, ExportError) as exc:
            raise ValueError(_message(exc)) from exc
    return summarize(results)


def _write_report(args: argparse.Namespace, plan: _Plan, summary: dict, out: Path, wall_s: float) -> None:
    """eval.json (the table plus what produced it) and eval.png."""
    from recipe_sim.ppo.evaluation import plot_success

    meta = plan.meta
    report = {
        "checkpoint": str(args.checkpoint),
        "task": meta["task"],
        "object_group": meta["object_group"],
        "iteration": meta["iteration"],
        "training_metrics": meta["metrics"],
        "seed": args.seed,
        "episodes_per_object": args.episodes,
        "conditions": summary,
        "force": {"scale": args.force_scale, "probability": args.force_probability},
        "start": args.start,
        "randomization": str(args.randomization or "config/randomization.yaml"),
        "wall_time_s": wall_s,
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_success(summary, out / "eval.png", f"{meta['task']} {meta['object_group']} @ it {meta['iteration']}")


def _record_video(args: argparse.Namespace, plan: _Plan, path: Path) -> None:
    """``args.video`` episodes of the first object under the first condition, one env, as an MP4."""
    from recipe_sim.ppo.envs import SubTask, make_env
    from recipe_sim.ppo.evaluation import VideoRecorder, deterministic_policy, load_actor, run_episodes

    obj = plan.objects[0]
    sub = SubTask(plan.meta["task"], f"single:{obj}", 0, (obj,))
    env = make_env(
        sub,
        1,
        args.seed,
        plan.randomizations[args.conditions[0]],
        init_states=plan.init_states,
        no_init_states=plan.init_states is None,
        num_threads=1,
        task_overrides=plan.task_overrides,
    )
    try:
        actor, _ = load_actor(args.checkpoint, env)
        recorder = VideoRecorder(env)
        run_episodes(env, deterministic_policy(actor), args.video, on_step=recorder)
        recorder.write(path, fps=1.0 / float(env.dt))
        recorder.close()
    finally:
        env.close()


def _check_args(args: argparse.Namespace) -> str:
    """The first invalid option value, or "" (checked before anything is loaded or written)."""
    if args.episodes < 1 or args.num_envs < 1:
        return "--episodes and --num-envs must be >= 1"
    if args.threads < 1:
        return f"--threads must be >= 1, got {args.threads}"
    if args.video < 0:
        return f"--video must be >= 0, got {args.video}"
    if args.force_scale is not None and not 0.0 <= args.force_scale <= 50.0:
        return f"--force-scale must be in [0, 50] (x object mass, m/s^2), got {args.force_scale}"
    if args.force_probability is not None and not 0.0 <= args.force_probability <= 1.0:
        return f"--force-probability must be in [0, 1], got {args.force_probability}"
    return ""


def _message(exc: BaseException) -> str:
    """KeyError wraps its message in quotes; every other error prints as is."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


if __name__ == "__main__":
    sys.exit(main())
