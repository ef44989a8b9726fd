"""Train every sub-task of a grouping in turn (``train --task T --group mix --all-subtasks``), resumably.

For each group of the grouping: train a specialist (``training.train_specialist``, demo init included when
asked), evaluate it from the ready pose on a seed not used in training, package it (exported actor,
metadata, eval) and add a row to the summary. Progress lives in ``<out>/subtasks.json``, rewritten
atomically after every stage, so a run that was killed picks up where it stopped:

* a sub-task already evaluated (and packaged, if asked) is skipped;
* a sub-task that has checkpoints continues PPO from the newest one up to the run's iteration count (the
  demo-init fine-tuning schedule, critic warm-up and learning rate, is restored from its metadata);
* a sub-task interrupted before its first checkpoint (during the demonstrations or the cloning) starts over.

Outputs: ``<out>/<slug>/`` (the sub-task's run directory, its ``eval/eval.json``), ``<out>/summary.json``
and ``<out>/summary.md`` (per-object success under each evaluation condition, training minutes, env steps,
iterations), and with ``package`` a folder per sub-task under ``recipe_sim/data/specialists/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recipe_common.checkpoint_io import write_json
from recipe_sim.ppo.checkpoint import CheckpointError, read_metadata
from recipe_sim.ppo.envs import SubTask, recorded_task_overrides
from recipe_sim.ppo.training import TrainRequest, train_specialist
from recipe_sim.randomization import RandomizationConfig

STATE_FILE = "subtasks.json"
STATES = ("pending", "training", "trained", "evaluated", "packaged")


@dataclass
class EvalPlan:
    """How each trained specialist is evaluated: named randomization conditions, episodes per object, seed."""

    conditions: dict[str, RandomizationConfig]
    episodes: int = 64
    seed: int = 1000  # keep apart from training seeds (training uses seed and seed + 1)
    max_envs: int = 64


@dataclass
class SubtaskRecord:
    slug: str
    label: str
    objects: list[str]
    status: str = "pending"
    checkpoint: str | None = None
    minutes: float | None = None
    env_steps: int | None = None
    iterations: int | None = None
    eval: dict[str, Any] | None = None  # condition -> object -> success rate
    package: str | None = None
    history: list[str] = field(default_factory=list)  # what happened, for the record (resumes)


def package_name(sub: SubTask) -> str:
    """``box_lift`` for a task's own one-group grouping, else ``<task>_<slug>`` (``grasp_reach_mix_0``)."""
    return sub.task if sub.grouping == sub.task else f"{sub.task}_{sub.slug}"


def _load_state(path: Path, subtasks: Sequence[SubTask]) -> dict[str, SubtaskRecord]:
    records = {s.slug: SubtaskRecord(s.slug, s.label, list(s.objects)) for s in subtasks}
    if path.is_file():
        saved = json.loads(path.read_text())
        for slug, raw in saved.get("subtasks", {}).items():
            if slug in records and raw.get("objects") == records[slug].objects:
                records[slug] = SubtaskRecord(**raw)
    return records


def _save_state(path: Path, task: str, grouping: str, records: dict[str, SubtaskRecord]) -> None:
    write_json(path, {"task": task, "grouping": grouping,
                      "subtasks": {k: vars(v) for k, v in records.items()}})


def remaining_iterations(run_dir: Path, total: int) -> tuple[Path | None, int]:
    """(checkpoint to resume from or None, iterations still to run to reach ``total``).

    The newest checkpoint whose metadata is complete and matches its file: a kill between writing
    ``model_<it>.pt`` and its metadata leaves that one out.
    """
    found = sorted(((int(p.stem.removeprefix("model_")), p) for p in run_dir.glob("model_*.pt")
                    if p.stem.removeprefix("model_").isdigit()), reverse=True)
    for _, ckpt in found:
        try:
            done = int(read_metadata(ckpt)["iteration"]) + 1
        except CheckpointError:
            continue
        return ckpt, max(total - done, 0)
    return None, total


def run_all_subtasks(
    subtasks: Sequence[SubTask],
    base: TrainRequest,
    out: Path,
    evaluation: EvalPlan,
    package: bool = False,
    packages_root: Path | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[SubTask, int], Any] | None = None,
) -> dict[str, SubtaskRecord]:
    """Train, evaluate and (optionally) package every sub-task; resumable (module docstring).

    ``base`` carries everything but the sub-task, its run directory and resume point. ``progress(sub,
    iterations)`` may return a per-iteration callback (a progress bar) for that sub-task's training.
    """
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    task, grouping = subtasks[0].task, subtasks[0].grouping
    records = _load_state(state_path, subtasks)
    _save_state(state_path, task, grouping, records)
    for sub in subtasks:
        rec = records[sub.slug]
        run_dir = out / sub.slug
        if rec.status in ("pending", "training"):
            def save() -> None:
                _save_state(state_path, task, grouping, records)

            _train_one(sub, rec, base, run_dir, log, progress, save)
            save()
        if rec.status == "trained":
            rec.eval = _evaluate_one(Path(str(rec.checkpoint)), evaluation, run_dir, log)
            rec.status = "evaluated"
            _save_state(state_path, task, grouping, records)
        if package and rec.status == "evaluated":
            from recipe_sim.ppo.packaged import package_specialist

            dest = package_specialist(Path(str(rec.checkpoint)), run_dir / "eval" / "eval.json",
                                      package_name(sub), root=packages_root)
            rec.package, rec.status = str(dest), "packaged"
            rec.history.append(f"packaged as {dest.name}")
            _save_state(state_path, task, grouping, records)
            log(f"all-subtasks: {sub.label}: packaged {dest}")
    write_summary(out, task, grouping, records, evaluation)
    return records


def _train_one(
    sub: SubTask,
    rec: SubtaskRecord,
    base: TrainRequest,
    run_dir: Path,
    log: Callable[[str], None],
    progress: Callable[[SubTask, int], Any] | None,
    save: Callable[[], None],
) -> None:
    ckpt, left = remaining_iterations(run_dir, base.iterations)
    if rec.status == "training" and ckpt is None:
        rec.history.append("interrupted before its first checkpoint: started over")
    req = replace(base, sub=sub, run_dir=run_dir)
    if ckpt is not None:
        if left == 0:
            rec.history.append(f"{ckpt.name} already reached {base.iterations} iterations")
            _finish(rec, ckpt, None)
            return
        rec.history.append(f"resumed from {ckpt.name} for {left} more iterations")
        log(f"all-subtasks: {sub.label}: resuming from {ckpt} ({left} iterations left)")
        req = replace(req, resume=ckpt, iterations=left, demo_init=False)
    rec.status = "training"
    save()
    callback = progress(sub, req.iterations) if progress is not None else None
    try:
        result = train_specialist(req, on_iteration=callback, log=log)
    finally:
        if callback is not None and hasattr(callback, "close"):
            callback.close()
    _finish(rec, result.checkpoint, result.wall_time_s)


def _finish(rec: SubtaskRecord, ckpt: Path, wall_s: float | None) -> None:
    meta = read_metadata(ckpt)
    metrics = meta.get("metrics") or {}
    rec.checkpoint = str(ckpt)
    rec.iterations = int(meta["iteration"]) + 1
    rec.env_steps = metrics.get("env_steps")
    rec.minutes = training_minutes(meta)
    rec.status = "trained"


def training_minutes(meta: dict[str, Any]) -> float:
    """A specialist's training time from its checkpoint metadata: the runner's clock covers PPO over every
    resume; demonstrations, cloning and DAgger come on top."""
    metrics = meta.get("metrics") or {}
    demo = meta.get("demo_init") or {}
    demo_s = float(demo.get("seconds", 0.0) or 0.0) + float(demo.get("bc_seconds", 0.0) or 0.0)
    dagger_s = float((demo.get("dagger") or {}).get("seconds", 0.0) or 0.0)
    return round((float(metrics.get("wall_time_s", 0.0)) + demo_s + dagger_s) / 60.0, 1)


def success_rates(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """condition -> object (and ``_overall``) -> success rate, from an ``evaluate_checkpoint`` report."""
    return {c: {o: v["success_rate"] for o, v in rows.items()} for c, rows in report["conditions"].items()}


def _evaluate_one(ckpt: Path, plan: EvalPlan, run_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Evaluate under the env the checkpoint recorded (its task overrides and object-position filter)."""
    overrides = recorded_task_overrides(read_metadata(ckpt))
    report = evaluate_checkpoint(ckpt, plan, task_overrides=overrides, log=log)
    out = run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "eval.json", report)
    return success_rates(report)


def evaluate_checkpoint(
    ckpt: Path,
    plan: EvalPlan,
    objects: Sequence[str] | None = None,
    task_overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    command_path: Path | None = None,
) -> dict[str, Any]:
    """The eval.json report (the ``eval`` CLI's layout) of a checkpoint under the plan's named conditions,
    deterministic actions, episodes from the ready pose (through the driver's command path of
    ``command_path``, a driver YAML, if given)."""
    from recipe_sim.ppo.evaluation import deterministic_policy, evaluate_objects, load_actor, summarize

    meta = read_metadata(ckpt)
    names = list(objects or meta["objects"])
    start = time.monotonic()

    def policy_for(env: Any) -> Any:
        actor, _ = load_actor(ckpt, env)
        return deterministic_policy(actor)

    results = {}
    for cond, rand in plan.conditions.items():
        def report(name: str, batch: Any, cond: str = cond) -> None:
            if log is not None:
                log(f"eval {cond:10s} {name:20s} {100 * batch.success_rate:5.1f}% "
                    f"({batch.success.size} episodes)")

        results[cond] = evaluate_objects(meta["task"], names, rand, plan.episodes, plan.max_envs, plan.seed,
                                         policy_for, task_overrides=task_overrides, on_object=report,
                                         command_path=command_path)
    return {
        "checkpoint": str(ckpt),
        "task": meta["task"],
        "object_group": meta["object_group"],
        "iteration": meta["iteration"],
        "training_metrics": meta["metrics"],
        "seed": plan.seed,
        "episodes_per_object": plan.episodes,
        "conditions": summarize(results),
        "start": "ready",
        "command_path": None if command_path is None else str(command_path),
        "randomization": {c: r.to_dict() for c, r in plan.conditions.items()},
        "wall_time_s": time.monotonic() - start,
    }


def write_summary(
    out: Path, task: str, grouping: str, records: dict[str, SubtaskRecord], plan: EvalPlan
) -> None:
    """summary.json (the records) and summary.md (a table: per-object success per condition, time, steps)."""
    write_json(out / "summary.json", {"task": task, "grouping": grouping, "eval_seed": plan.seed,
                                      "eval_episodes_per_object": plan.episodes,
                                      "subtasks": {k: vars(v) for k, v in records.items()}})
    conds = list(plan.conditions)
    lines = [f"# {task}, grouping {grouping}", "",
             f"Deterministic episodes from the ready pose, {plan.episodes} per object, seed {plan.seed}.", "",
             "| sub-task | object | " + " | ".join(conds) + " | minutes | env steps | iterations |",
             "|---|---|" + "---|" * len(conds) + "---|---|---|"]
    for rec in records.values():
        for k, obj in enumerate([*rec.objects, "_overall"]):
            cells = []
            for c in conds:
                v = (rec.eval or {}).get(c, {}).get(obj)
                cells.append("" if v is None else f"{100 * v:.0f}%")
            tail = ([f"{rec.minutes}", f"{rec.env_steps:,}" if rec.env_steps else "", f"{rec.iterations}"]
                    if k == 0 else ["", "", ""])
            name = "all" if obj == "_overall" else obj
            lines.append(f"| {rec.label if k == 0 else ''} | {name} | " + " | ".join(cells) + " | "
                         + " | ".join(str(t) for t in tail) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def standard_conditions(randomization_files: Sequence[Path] | None = None,
                        pushes_file: Path | None = None) -> dict[str, RandomizationConfig]:
    """nominal, one condition per randomization file (named by its stem without ``randomization_``; default
    the low-noise profile and Table IV read as degrees) and pushes (the force item of ``pushes_file``)."""
    from recipe_common.paths import config_path
    from recipe_sim.ppo.envs import randomization_config
    from recipe_sim.ppo.evaluation import condition_randomization

    files = list(randomization_files or [config_path("randomization_low_noise.yaml"),
                                         config_path("randomization_degrees.yaml")])
    out = {"nominal": randomization_config(False)}
    for f in files:
        out[Path(f).stem.removeprefix("randomization_") or "randomized"] = randomization_config(True, path=f)
    out["pushes"] = condition_randomization("pushes", path=pushes_file)
    return out


def main(argv: list[str] | None = None) -> int:
    """Evaluate one checkpoint under the standard conditions (and package it): the all-subtasks runner's
    evaluation for a run trained on its own, or again with more episodes."""
    import argparse
    import sys

    p = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0] if main.__doc__ else None)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--episodes", type=int, default=256, help="episodes per object and condition")
    p.add_argument("--seed", type=int, default=1000, help="evaluation seed (not a training seed)")
    p.add_argument("--randomization", type=Path, nargs="+", default=None,
                   help="randomization files, one condition each (default: low-noise and degrees profiles)")
    p.add_argument("--out", type=Path, default=None, help="default <checkpoint dir>/eval_<it>")
    p.add_argument("--package", default=None, metavar="NAME", help="package as data/specialists/NAME")
    p.add_argument("--command-path", type=Path, default=None, metavar="DRIVER_YAML",
                   help="evaluate as deployed: every env through the driver's command path of this YAML")
    a = p.parse_args(argv)
    try:
        meta = read_metadata(a.checkpoint)
        plan = EvalPlan(standard_conditions(a.randomization), episodes=a.episodes, seed=a.seed)
        if a.seed in (meta["seed"], meta["seed"] + 1):
            raise ValueError(f"--seed {a.seed} was used in training (seed {meta['seed']}, demonstrations "
                             f"{meta['seed'] + 1})")
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    out = a.out or a.checkpoint.resolve().parent / f"eval_{meta['iteration']}"
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate_checkpoint(a.checkpoint, plan, task_overrides=recorded_task_overrides(meta),
                                 log=lambda m: print(m, file=sys.stderr, flush=True),
                                 command_path=a.command_path)
    write_json(out / "eval.json", report)
    from recipe_sim.ppo.evaluation import plot_success

    plot_success(report["conditions"], out / "eval.png", f"{meta['task']} {meta['object_group']} "
                 f"@ it {meta['iteration']}")
    rows = {c: f"{100 * r['_overall']['success_rate']:.1f}%" for c, r in report["conditions"].items()}
    print(f"evaluate: {rows}; wrote {out / 'eval.json'}", file=sys.stderr)
    if a.package:
        from recipe_sim.ppo.packaged import package_specialist

        print(f"packaged {package_specialist(a.checkpoint, out / 'eval.json', a.package)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
