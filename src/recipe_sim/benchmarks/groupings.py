"""Divide-and-conquer groupings benchmark (paper Sec. III-C: all / shape / mix / single on the tabletop ten).

The paper trains one specialist per group of a grouping and compares the groupings by sample efficiency
(single > shape > all > mix) and by the real success of the generalist distilled from them (mix 90%,
shape 63%, single 40%, all 23%). Here each grouping's specialists are trained with the same recipe
(``train --group G --all-subtasks``: the scripted expert's demonstrations, cloned, then ``--iterations``
of PPO) and every object is evaluated by the specialist of its own group, from the ready pose on the same
seed. The table says, per grouping: how many specialists, their training minutes and expert episodes in
all, and each object's success under every evaluation condition; the figure shows the mean over objects.

    ./dev bench groupings                                   # clones (1 PPO iteration), 64 episodes per object
    ./dev bench groupings --groupings shape mix --iterations 100 --out runs/bench/groupings_ppo
    ./dev bench groupings --from-packages mix              # mix from its committed packages, the rest trained
    ./dev bench groupings --report-only                     # aggregate the runs already in --out

Each grouping's run lives in ``<out>/<grouping>/`` and is the all-subtasks runner's, so a killed
benchmark continues where it stopped when run again, and the report includes the evaluated sub-tasks of an
unfinished grouping. Minutes are wall-clock, so they depend on what else the machine ran. Distilling one
generalist per grouping from these specialists is the next stage, ``./dev bench grouping_generalists``.
Writes ``groupings.json``, ``groupings.md`` and ``groupings.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GROUPINGS = ("single", "shape", "mix", "all")


def grouping_row(summary: dict[str, Any], metadata: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One grouping's figures from its all-subtasks ``summary.json`` and each sub-task checkpoint's
    metadata (keyed by slug): success per condition and object (each object by its own group's
    specialist), the mean over objects, specialists trained, minutes and expert episodes in all."""
    per: dict[str, dict[str, float]] = {}
    missing: list[str] = []
    minutes, expert_episodes, demo_pairs, trained = 0.0, 0, 0, 0
    for slug, rec in summary["subtasks"].items():
        if not rec.get("eval"):
            missing.extend(rec["objects"])
            continue
        trained += 1
        minutes += float(rec.get("minutes") or 0.0)
        demo = (metadata.get(slug) or {}).get("demo_init") or {}
        expert_episodes += int(demo.get("episodes_run") or 0)
        demo_pairs += int(demo.get("pairs") or 0)
        for cond, rows in rec["eval"].items():
            for obj in rec["objects"]:
                if obj in rows:
                    per.setdefault(cond, {})[obj] = float(rows[obj])
    mean = {c: sum(v.values()) / len(v) for c, v in per.items() if v}
    return {"specialists": trained, "groups": len(summary["subtasks"]), "minutes": round(minutes, 1),
            "expert_episodes": expert_episodes, "demonstration_pairs": demo_pairs,
            "success": per, "mean_success": mean, "objects_without_specialist": missing}


def package_summary(subtasks: Sequence[Any], root: Path) -> tuple[dict, dict]:
    """A grouping's summary and metadata (as ``grouping_row`` takes them) from the committed packages of its
    sub-tasks (``SubTask``s; the names the all-subtasks runner packages them under, eval.json,
    metadata.json), so a grouping trained and packaged once need not be trained again for the table."""
    from recipe_sim.ppo.all_subtasks import package_name, success_rates, training_minutes

    records, meta = {}, {}
    for sub in subtasks:
        folder = root / package_name(sub)
        try:
            ev = json.loads((folder / "eval.json").read_text())
            md = json.loads((folder / "metadata.json").read_text())
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"{folder}: not a packaged specialist with eval.json and metadata.json "
                                    f"({exc})") from exc
        if sorted(md["objects"]) != sorted(sub.objects):
            raise ValueError(f"{folder}: objects {md['objects']} are not {sub.label} {list(sub.objects)}")
        records[sub.slug] = {"objects": list(sub.objects), "eval": success_rates(ev),
                             "minutes": training_minutes(md), "checkpoint": None, "package": str(folder)}
        meta[sub.slug] = md
        seed, episodes = ev["seed"], ev["episodes_per_object"]
    summary = {"task": "grasp_reach", "grouping": subtasks[0].grouping, "eval_seed": seed,
               "eval_episodes_per_object": episodes, "subtasks": records}
    return summary, meta


def run_summary(run: Path) -> dict[str, Any] | None:
    """A grouping run's records from the all-subtasks runner's progress file (``subtasks.json``, rewritten
    after every stage, so an unfinished run reports its evaluated sub-tasks), with the evaluation's seed and
    episodes from a sub-task's eval.json; None if the run never started."""
    from recipe_sim.ppo.all_subtasks import STATE_FILE

    state = run / STATE_FILE
    if not state.is_file():
        return None
    data = json.loads(state.read_text())
    data.setdefault("eval_seed", None)
    data.setdefault("eval_episodes_per_object", None)
    for slug, rec in data["subtasks"].items():
        ev = run / slug / "eval" / "eval.json"
        if rec.get("eval") and ev.is_file():
            e = json.loads(ev.read_text())
            data["eval_seed"], data["eval_episodes_per_object"] = e["seed"], e["episodes_per_object"]
            break
    return data


def checkpoint_metadata(ckpt: Path) -> dict[str, Any]:
    """A sub-task checkpoint's metadata (its demonstration counts), or {} with a warning: a run directory
    cleaned since its summary was written still reports its success."""
    from recipe_sim.ppo.checkpoint import CheckpointError, read_metadata

    try:
        return read_metadata(ckpt, verify_hash=False)
    except (OSError, CheckpointError) as exc:
        print(f"groupings: {ckpt}: no metadata ({exc}); its expert episodes are not counted", file=sys.stderr)
        return {}


def add_common_means(rows: dict[str, dict[str, Any]], objects: list[str], conditions: list[str]) -> list[str]:
    """Set each row's ``mean_common``: the mean over the objects that every grouping has a result for under
    every condition (a grouping with untrained groups would otherwise be averaged over other objects)."""
    common = [o for o in objects
              if all(o in r["success"].get(c, {}) for r in rows.values() for c in conditions)]
    for r in rows.values():
        r["mean_common"] = ({c: sum(r["success"][c][o] for o in common) / len(common) for c in conditions}
                            if common else {})
        r["common_objects"] = common
    return common


def markdown(rows: dict[str, dict[str, Any]], objects: list[str], conditions: list[str], episodes: int,
             seed: int) -> str:
    """The benchmark's table: one line per grouping with the mean per condition, then per object."""
    lines = ["# grasp_reach groupings (paper: all / shape / mix / single)", "",
             f"Each object evaluated by its own group's specialist, deterministic, from the ready pose, "
             f"{episodes} episodes per object, seed {seed}. Mean over the objects every grouping has a "
             "specialist for.",
             "",
             "| grouping | specialists | minutes | expert episodes | " + " | ".join(conditions) + " |",
             "|---|---|---|---|" + "---|" * len(conditions)]
    for g, r in rows.items():
        mean = r.get("mean_common", r["mean_success"])
        cells = [f"{100 * mean[c]:.1f}%" if c in mean else "" for c in conditions]
        head = f"| {g} | {r['specialists']}/{r['groups']} | {r['minutes']} | {r['expert_episodes']:,} | "
        lines.append(head + " | ".join(cells) + " |")
    for c in conditions:
        lines += ["", f"Per object, {c}:", "", "| grouping | " + " | ".join(objects) + " |",
                  "|---|" + "---|" * len(objects)]
        for g, r in rows.items():
            vals = r["success"].get(c, {})
            cells = [f"{100 * vals[o]:.0f}%" if o in vals else "-" for o in objects]
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: dict[str, dict[str, Any]], conditions: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(conditions))
    x = np.arange(len(rows))
    for k, c in enumerate(conditions):
        means = [100 * r.get("mean_common", r["mean_success"]).get(c, 0.0) for r in rows.values()]
        ax.bar(x + k * width, means, width, label=c)
    ax.set_xticks(x + width * (len(conditions) - 1) / 2,
                  [f"{g}\n{r['specialists']} spec., {r['minutes']} min" for g, r in rows.items()])
    common = next(iter(rows.values())).get("common_objects")
    ax.set_ylabel(f"mean success over {len(common) if common else 'the'} objects (%)")
    ax.set_ylim(0, 100)
    ax.set_title("grasp_reach specialists by grouping")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groupings", nargs="+", default=list(GROUPINGS), choices=GROUPINGS)
    p.add_argument("--out", type=Path, default=Path("runs/bench/groupings"))
    p.add_argument("--profile", default="groups", help="PPO profile (config/ppo.yaml; default groups)")
    p.add_argument("--iterations", type=int, default=1, help="PPO iterations after cloning (1: the clone)")
    p.add_argument("--randomization", type=Path, default=Path("config/randomization_low_noise.yaml"),
                   help="training randomization (default the low-noise profile)")
    p.add_argument("--eval-episodes", type=int, default=64, help="episodes per object and condition")
    p.add_argument("--report-only", action="store_true", help="only aggregate the runs already in --out")
    p.add_argument("--from-packages", nargs="*", default=[], choices=GROUPINGS, metavar="GROUPING",
                   help="take these groupings from their committed packages (grasp_reach_<grouping>_<i>) "
                   "instead of training them")
    a = p.parse_args(argv)
    if a.eval_episodes < 1 or a.iterations < 1:
        p.error("--eval-episodes and --iterations must be >= 1")

    from recipe_common.checkpoint_io import write_json
    from recipe_sim.objects import load_catalog

    rows: dict[str, dict[str, Any]] = {}
    conditions: list[str] = []
    seed, episodes = 0, a.eval_episodes
    catalog = load_catalog()
    for g in a.groupings:
        run = a.out / g
        if g in a.from_packages:
            from recipe_sim.ppo.envs import resolve_subtasks
            from recipe_sim.ppo.packaged import SPECIALISTS_DIR

            summary, meta = package_summary(resolve_subtasks("grasp_reach", g), SPECIALISTS_DIR)
            rows[g] = grouping_row(summary, meta)
            seed, episodes = summary["eval_seed"], summary["eval_episodes_per_object"]
            conditions += [c for c in rows[g]["success"] if c not in conditions]
            continue
        if not a.report_only:
            from recipe_sim import train

            code = train.main([
                "--task", "grasp_reach", "--group", g, "--all-subtasks", "--profile", a.profile,
                "--no-task-aware-init", "--demo-init", "--randomization", str(a.randomization),
                "--iterations", str(a.iterations), "--eval-episodes", str(a.eval_episodes), "--no-export",
                "--out", str(run)])
            if code != 0:
                print(f"groupings: {g}: training stopped with exit code {code}; reporting what finished",
                      file=sys.stderr)
        summary = run_summary(run)
        if summary is None:
            print(f"groupings: {g}: no {run / 'subtasks.json'}; skipped", file=sys.stderr)
            continue
        if summary["eval_seed"] is not None:
            seed, episodes = summary["eval_seed"], summary["eval_episodes_per_object"]
        meta = {slug: checkpoint_metadata(Path(rec["checkpoint"]))
                for slug, rec in summary["subtasks"].items() if rec.get("checkpoint")}
        rows[g] = grouping_row(summary, meta)
        conditions += [c for c in rows[g]["success"] if c not in conditions]
    if not rows:
        print("groupings: nothing to report", file=sys.stderr)
        return 1
    objects = catalog.group("all")[0]
    order = ["nominal", "low_noise", "degrees", "pushes"]
    conditions.sort(key=lambda c: (order.index(c) if c in order else len(order), c))
    add_common_means(rows, objects, conditions)
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "groupings.json", {"task": "grasp_reach", "eval_seed": seed,
                                          "eval_episodes_per_object": episodes, "profile": a.profile,
                                          "iterations": a.iterations, "groupings": rows})
    table = markdown(rows, objects, conditions, episodes, seed)
    (a.out / "groupings.md").write_text(table)
    plot(rows, conditions, a.out / "groupings.png")
    print(table)
    print(f"wrote {a.out}/groupings.json, .md, .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
