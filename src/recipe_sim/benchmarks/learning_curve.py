"""Learning benchmark: sim success rate of a PPO specialist against wall-clock minutes and env steps.

Trains from scratch with the default CPU profile (config/ppo.yaml) under the paper's domain
randomization, for a time budget, and reports

* the training curve: success rate of the episodes finished in each iteration (stochastic policy,
  randomization on), smoothed over ``--smooth`` iterations, against minutes and env steps;
* a final evaluation of the deterministic policy under randomization (``--eval-episodes`` per object).

Runs (the issue's benchmark set)::

    python benchmarks/learning_curve.py --task grasp_reach --group shape --subtask 0 --minutes 60
    python benchmarks/learning_curve.py --task box_lift --task-aware-init --minutes 60
    python benchmarks/learning_curve.py --task handover --task-aware-init --minutes 60
    # Table II on fewer seeds: with vs without task-aware init, share of seeds above 60% success
    python benchmarks/learning_curve.py --task grasp_reach --compare-init --seeds 0 1 2 --minutes 20
    # demo-initialised PPO (ppo/demo_init.py) on one object the scripted expert can grasp
    python benchmarks/learning_curve.py --task grasp_reach --group single:can_medium --demo-init \
        --randomization config/randomization_low_noise.yaml --minutes 60

Writes ``<out>/learning_curve.json`` and ``<out>/learning_curve.png``; each run's directory is a normal
train run (checkpoints, TensorBoard, exported policy).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SUCCESS_THRESHOLD = 0.6  # paper Table II: a seed "learns" when it exceeds 60% success


@dataclass
class RunOutcome:
    label: str
    seed: int
    task_aware_init: bool
    minutes: np.ndarray
    env_steps: np.ndarray
    success: np.ndarray  # smoothed training success rate per iteration (NaN before any episode ends)
    reward: np.ndarray  # mean episode return (last 100 episodes) per iteration, NaN before any
    final_eval: float | None  # from the ready pose, under the training randomization
    run_dir: Path
    final_eval_table_iv: float | None = None  # same under full Table IV (training used another file)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--task", default="grasp_reach")
    p.add_argument("--group", default=None, help="grouping (default: shape for grasp_reach, else the task's)")
    p.add_argument("--subtask", type=int, default=0, help="which group of the grouping (default 0)")
    p.add_argument("--minutes", type=float, default=60.0, help="training time budget per run (default 60)")
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="budget per run in PPO iterations instead of minutes (a loaded machine's minutes are not "
        "a quiet one's: 60 quiet minutes are about 1,950 grasp_reach or handover and 1,490 box_lift "
        "iterations)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    init = p.add_mutually_exclusive_group()
    init.add_argument("--task-aware-init", action="store_true", help="start episodes from recorded states")
    init.add_argument(
        "--compare-init",
        action="store_true",
        help="Table II: train every seed with and without task-aware init",
    )
    p.add_argument("--profile", default="default")
    p.add_argument(
        "--demo-init",
        action="store_true",
        help="clone the scripted expert before PPO (train --demo-init; the budget includes it)",
    )
    p.add_argument("--num-envs", type=int, default=None)
    p.add_argument("--smooth", type=int, default=10, help="iterations in the success-rate moving average")
    p.add_argument("--report-every-min", type=float, default=5.0, help="rows of the printed table")
    p.add_argument(
        "--eval-episodes", type=int, default=20, help="final evaluation episodes per object (0: skip)"
    )
    p.add_argument("--no-randomization", action="store_true", help="train without domain randomization")
    p.add_argument(
        "--randomization",
        type=Path,
        default=None,
        help="randomization YAML for training and the final eval (default config/randomization.yaml = "
        "Table IV); with another file the final eval is also run under Table IV",
    )
    p.add_argument("--out", type=Path, default=None, help="default runs/benchmarks/<task>-<timestamp>")
    return p.parse_args(argv)


def smoothed(values: list[float | None], window: int) -> np.ndarray:
    """Moving average over the last ``window`` iterations that had finished episodes (NaN until then)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    out = np.full_like(x, np.nan)
    for i in range(len(x)):
        w = x[max(0, i - window + 1) : i + 1]
        w = w[np.isfinite(w)]
        if w.size:
            out[i] = w.mean()
    return out


def train_one(args: argparse.Namespace, seed: int, task_aware: bool, out: Path) -> RunOutcome:
    from recipe_sim.ppo.config import load_config
    from recipe_sim.ppo.envs import randomization_config, resolve_init_states, resolve_subtasks
    from recipe_sim.ppo.progress import TrainingProgress
    from recipe_sim.ppo.training import TrainRequest, train_specialist

    group = args.group or ("shape" if args.task == "grasp_reach" else None)
    (sub,) = resolve_subtasks(args.task, group, args.subtask)
    config = load_config(profile=args.profile).with_overrides(num_envs=args.num_envs)
    init_path, no_init = resolve_init_states(args.task, task_aware, None)
    label = f"{'demo-' if args.demo_init else ''}{'init' if task_aware else 'no-init'}-seed{seed}"
    run_dir = out / label
    req = TrainRequest(
        sub=sub,
        config=config,
        run_dir=run_dir,
        seed=seed,
        randomization=randomization_config(not args.no_randomization, path=args.randomization),
        randomization_file=None if args.randomization is None else args.randomization.resolve(),
        iterations=args.iterations or 10**7,
        init_states=init_path,
        no_init_states=no_init,
        time_budget_s=None if args.iterations else 60.0 * args.minutes,
        demo_init=args.demo_init,
        extra_metadata={"benchmark": "learning_curve"},
    )
    budget = f"{args.iterations} iterations" if args.iterations else f"{args.minutes:g} min"
    print(f"== {args.task} {sub.label} {label}: {budget} -> {run_dir}", file=sys.stderr)
    with TrainingProgress(None, desc=label) as progress:
        result = train_specialist(req, on_iteration=progress, log=progress.write)
    hist = result.history
    final = final_iv = None
    if args.eval_episodes > 0:
        final = final_evaluation(result.checkpoint, args, sub.objects, args.randomization)
        if args.randomization is not None and not args.no_randomization:
            final_iv = final_evaluation(result.checkpoint, args, sub.objects, None)
    return RunOutcome(
        label,
        seed,
        task_aware,
        np.array([h.wall_time_s / 60 for h in hist]),
        np.array([h.env_steps for h in hist]),
        smoothed([h.success_rate for h in hist], args.smooth),
        np.array([np.nan if h.mean_reward is None else h.mean_reward for h in hist]),
        final,
        run_dir,
        final_iv,
    )


def final_evaluation(
    checkpoint: Path, args: argparse.Namespace, objects: tuple[str, ...], randomization: Path | None
) -> float:
    """Deterministic policy from the ready pose (the deployment start, also for runs trained from
    task-aware initial states), ``eval_episodes`` per object, under ``randomization`` (None: Table IV)."""
    from recipe_sim.ppo.checkpoint import read_metadata
    from recipe_sim.ppo.envs import SubTask, make_env, recorded_task_overrides
    from recipe_sim.ppo.evaluation import (
        condition_randomization,
        deterministic_policy,
        episodes_per_env,
        load_actor,
        run_episodes,
        take,
    )

    meta = read_metadata(checkpoint)
    condition = "nominal" if args.no_randomization else "randomized"
    successes = []
    for k, name in enumerate(objects):
        n_envs, rounds = episodes_per_env(args.eval_episodes, 25)
        env = make_env(
            SubTask(meta["task"], f"single:{name}", 0, (name,)),
            n_envs,
            10_000 + k,
            condition_randomization(condition, path=randomization),
            no_init_states=True,
            task_overrides=recorded_task_overrides(meta),
        )
        try:
            actor, _ = load_actor(checkpoint, env)
            successes.append(
                take(run_episodes(env, deterministic_policy(actor), rounds), args.eval_episodes).success
            )
        finally:
            env.close()
    return float(np.concatenate(successes).mean())


def report_table(run: RunOutcome, every_min: float) -> str:
    lines = [f"{run.label}: minutes | env steps | success (train, smoothed) | mean episode return"]
    marks = np.arange(every_min, run.minutes[-1] + 1e-9, every_min) if len(run.minutes) else []
    for m in [*marks, run.minutes[-1]] if len(run.minutes) else []:
        i = int(np.searchsorted(run.minutes, m - 1e-9))
        i = min(i, len(run.minutes) - 1)
        s = run.success[i]
        lines.append(
            f"  {run.minutes[i]:6.1f} | {run.env_steps[i]:10d} | "
            f"{'  n/a' if not np.isfinite(s) else f'{100 * s:5.1f}%'} | {_fmt(run.reward[i])}"
        )
    if run.final_eval is not None:
        lines.append(f"  final deterministic eval from the ready pose: {100 * run.final_eval:.1f}% success")
    if run.final_eval_table_iv is not None:
        lines.append(f"  same under the full Table IV: {100 * run.final_eval_table_iv:.1f}% success")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:8.2f}"


def plot(runs: list[RunOutcome], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for run in runs:
        style = "-" if run.task_aware_init else "--"
        ax_t.plot(run.minutes, 100 * run.success, style, label=run.label)
        ax_s.plot(run.env_steps / 1e6, 100 * run.success, style, label=run.label)
    ax_t.set_xlabel("wall-clock minutes")
    ax_s.set_xlabel("env steps (millions)")
    ax_t.set_ylabel("training success rate (%)")
    for ax in (ax_t, ax_s):
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.axhline(80, color="grey", lw=0.8, ls=":")
    ax_s.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table_ii(runs: list[RunOutcome]) -> dict[str, Any]:
    """Share of seeds whose best smoothed training success exceeded 60%, with and without init."""
    out: dict[str, Any] = {}
    for aware in (True, False):
        sel = [r for r in runs if r.task_aware_init == aware]
        if sel:
            learned = [bool(np.nanmax(np.append(r.success, 0.0)) > SUCCESS_THRESHOLD) for r in sel]
            out["with_init" if aware else "without_init"] = {
                "seeds": len(sel),
                "share_above_60pct": float(np.mean(learned)),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from recipe_common.paths import workspace_dir

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or workspace_dir() / "runs" / "benchmarks" / f"{args.task}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    variants = [True, False] if args.compare_init else [bool(args.task_aware_init)]
    runs = [train_one(args, seed, aware, out) for seed in args.seeds for aware in variants]
    for run in runs:
        print(report_table(run, args.report_every_min))
    summary = {
        "task": args.task,
        "group": args.group,
        "subtask": args.subtask,
        "minutes": None if args.iterations else args.minutes,
        "iterations": args.iterations,
        "profile": args.profile,
        "demo_init": bool(args.demo_init),
        "randomization": (
            False if args.no_randomization else str(args.randomization or "config/randomization.yaml")
        ),
        "runs": [
            {
                "label": r.label,
                "seed": r.seed,
                "task_aware_init": r.task_aware_init,
                "run_dir": str(r.run_dir),
                "final_eval_success": r.final_eval,
                "final_eval_success_table_iv": r.final_eval_table_iv,
                "curve": [
                    {
                        "minutes": float(m),
                        "env_steps": int(s),
                        "success": None if not np.isfinite(v) else float(v),
                        "mean_episode_return": None if not np.isfinite(g) else float(g),
                    }
                    for m, s, v, g in zip(r.minutes, r.env_steps, r.success, r.reward, strict=True)
                ],
            }
            for r in runs
        ],
    }
    if args.compare_init:
        summary["table_ii"] = table_ii(runs)
        print(f"Table II ({args.task}, {len(args.seeds)} seeds): {json.dumps(summary['table_ii'])}")
    (out / "learning_curve.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(
        runs,
        out / "learning_curve.png",
        f"{args.task}: PPO {args.profile} profile, "
        + (f"{args.iterations} iterations" if args.iterations else f"{args.minutes:g} min budget"),
    )
    print(f"wrote {out / 'learning_curve.json'} and {out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
