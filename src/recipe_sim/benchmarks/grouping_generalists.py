"""Groupings benchmark, second stage: one diffusion-policy generalist distilled per grouping (paper III-C).

The paper compares the groupings (all / shape / mix / single) by the success of the generalist distilled
from each grouping's specialists (real robot: mix 90%, shape 63%, single 40%, all 23%). ``groupings`` (the
first stage) trains and scores the specialists; this benchmark distils them, with the same budget for every
grouping, and scores the generalists on the same objects and episodes:

1. the grouping's evaluated specialists are packaged (``<out>/<grouping>/specialists/<slug>``; a grouping
   named in ``--from-packages`` uses its committed packages ``grasp_reach_<grouping>_<i>``). A specialist that
   succeeded in none of its evaluation episodes under the collection profile gives no episodes to keep and is
   left out (the balls' group: ``collect`` would wait for a success forever);
2. ``collect`` keeps ``--steps`` successful policy steps in all, split evenly over those specialists;
3. ``train_generalist`` (cpu profile, ``--train-steps``, one thread);
4. ``eval_generalist`` on ``--objects`` under the training randomization, from the ready pose.

Each stage is skipped when its output is complete (a dataset with at least ``--steps`` steps, a run whose
record reached its planned steps, an eval.json), so a killed benchmark continues where it stopped.

    ./dev bench grouping_generalists --from-packages mix                  # after ./dev bench groupings
    ./dev bench grouping_generalists --groupings mix all --steps 28000 --train-steps 4000
    ./dev bench grouping_generalists --report-only

Writes ``grouping_generalists.json``, ``.md`` and ``.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GROUPINGS = ("single", "shape", "mix", "all")
# The balls are left out by default: no grasp_reach specialist here holds one under the randomization
# (every grouping scores 0-2% on them: docs/specialists.md), so they would only dilute every mean alike.
DEFAULT_OBJECTS = ("can_small", "can_medium", "bottle", "puck", "cube_small", "cube_medium", "cuboid_tall")
COLLECT_CONDITION = "low_noise"  # the specialists' eval condition that matches their training randomization


def has_success(rates: dict[str, float]) -> bool:
    """Whether a specialist's per-object rates (``success_rates`` of one condition) show any success: one
    without gives ``collect`` nothing to keep."""
    return any(v > 0 for o, v in rates.items() if o != "_overall")


def specialist_sources(grouping: str, specialists_from: Path, packages_dir: Path,
                       committed: bool) -> list[str]:
    """Folders (or committed names) of the grouping's specialists that have at least one success under the
    collection profile in their own evaluation; packages the evaluated checkpoints of a ``groupings`` run."""
    from recipe_sim.ppo.all_subtasks import STATE_FILE, package_name, success_rates
    from recipe_sim.ppo.envs import resolve_subtasks
    from recipe_sim.ppo.packaged import SPECIALISTS_DIR, package_specialist

    sources: list[str] = []
    if committed:
        for sub in resolve_subtasks("grasp_reach", grouping):
            name = package_name(sub)
            ev = json.loads((SPECIALISTS_DIR / name / "eval.json").read_text())
            if has_success(success_rates(ev).get(COLLECT_CONDITION, {})):
                sources.append(name)
        return sources
    state = specialists_from / grouping / STATE_FILE
    if not state.is_file():
        raise FileNotFoundError(f"{state}: no groupings run for {grouping!r} "
                                "(run ./dev bench groupings first)")
    for slug, rec in json.loads(state.read_text())["subtasks"].items():
        rates = (rec.get("eval") or {}).get(COLLECT_CONDITION, {})
        if not rec.get("checkpoint") or not has_success(rates):
            print(f"grouping_generalists: {grouping}/{slug} ({rec['objects']}): no successful evaluation "
                  "episodes; left out", file=sys.stderr)
            continue
        dest = packages_dir / slug
        if not (dest / "eval.json").is_file():
            ckpt = Path(rec["checkpoint"])
            package_specialist(ckpt, ckpt.parent / "eval" / "eval.json", slug, packages_dir)
        sources.append(str(dest))
    return sources


def dataset_steps(path: Path) -> int:
    """Steps in a collected dataset, 0 if there is none (or it does not open)."""
    from recipe_policy.dataset import DatasetError, open_dataset

    if not path.exists():
        return 0
    try:
        return open_dataset(path).n_steps
    except (DatasetError, OSError, ValueError):
        return 0


def trained_steps(run: Path) -> tuple[int, int]:
    """(step reached, steps planned) of a generalist run, (0, 0) if it has no policy yet."""
    from recipe_policy.generalist import read_record

    path = run / "policy.safetensors"
    if not path.is_file():
        return 0, 0
    t = read_record(path)["training"]
    return int(t["step"]), int(t["steps_planned"])


def run_grouping(g: str, a: argparse.Namespace) -> Path | None:
    """Collect, train and evaluate one grouping's generalist (each stage only if not done); its eval.json."""
    from recipe_policy import train as train_generalist
    from recipe_sim.distill import collect, eval_generalist

    base = a.out / g
    sources = specialist_sources(g, a.specialists_from, base / "specialists", g in a.from_packages)
    if not sources:
        print(f"grouping_generalists: {g}: no specialist to collect from; skipped", file=sys.stderr)
        return None
    data, run, ev = base / "dataset.zarr", base / "generalist", base / "eval"
    base.mkdir(parents=True, exist_ok=True)
    (base / "sources.json").write_text(json.dumps(sources, indent=1) + "\n")
    if dataset_steps(data) < a.steps:
        print(f"== {g}: collect {a.steps} steps from {len(sources)} specialists", file=sys.stderr)
        if collect.main(["--specialists", *sources, "--steps", str(a.steps), "--threads", str(a.threads),
                         "--seed", str(a.collect_seed), "--out", str(data), "--overwrite", "--no-progress"]):
            raise RuntimeError(f"{g}: collect failed")
    step, planned = trained_steps(run)
    if step < a.train_steps or planned != a.train_steps:
        print(f"== {g}: train {a.train_steps} steps", file=sys.stderr)
        resume = ["--resume"] if (run / "train_state.pt").is_file() and planned == a.train_steps else []
        if train_generalist.main(["--dataset", str(data), "--profile", "cpu", "--threads", str(a.threads),
                                  "--steps", str(a.train_steps), "--out", str(run), *resume, "--no-progress",
                                  "--set", "training.state_key=obs_state",
                                  "augmentation.state.object_pos_noise_m=0",
                                  "augmentation.state.joint_pos_noise_rad=0"]):
            raise RuntimeError(f"{g}: train_generalist failed")
    if not (ev / "eval.json").is_file():
        print(f"== {g}: evaluate on {len(a.objects)} objects", file=sys.stderr)
        if eval_generalist.main(["--policy", f"{g}={run}", "--objects", *a.objects,
                                 "--conditions", "randomized", "--specialists",
                                 "--episodes", str(a.eval_episodes), "--seed", str(a.eval_seed),
                                 "--threads", str(a.threads), "--inference-steps", "2", "--out", str(ev)]):
            raise RuntimeError(f"{g}: eval_generalist failed")
    return ev / "eval.json"


def specialist_success(sources: Sequence[str]) -> dict[str, float]:
    """Each object's success under the collection profile by its own group's specialist (the specialists'
    evaluations of the first stage: another seed and episode count than the generalists')."""
    from recipe_sim.ppo.all_subtasks import success_rates
    from recipe_sim.ppo.packaged import SPECIALISTS_DIR

    out: dict[str, float] = {}
    for src in sources:
        folder = Path(src) if Path(src).is_dir() else SPECIALISTS_DIR / src
        rates = success_rates(json.loads((folder / "eval.json").read_text())).get(COLLECT_CONDITION, {})
        out.update({o: float(v) for o, v in rates.items() if o != "_overall"})
    return out


def grouping_row(g: str, ev: dict[str, Any], rec: dict[str, Any], spec: dict[str, float]) -> dict[str, Any]:
    """One grouping's row from its generalist's eval.json (``ev``) and record (``rec``, the safetensors
    header): per-object success, the mean over objects, its specialists' own success on the same objects
    (``spec``, from ``specialist_success``; an object no specialist succeeded on counts 0), and what it was
    built from."""
    rows = ev["conditions"]["randomized"][g]
    per = {o: float(v["success_rate"]) for o, v in rows.items() if o != "_overall"}
    counts = rec["dataset"]["counts"]
    t = rec["training"]
    return {"specialists": len(rec["dataset"]["sources"]), "success": per,
            "mean": sum(per.values()) / len(per),
            "specialist_success": {o: spec.get(o, 0.0) for o in per},
            "specialist_mean": sum(spec.get(o, 0.0) for o in per) / len(per),
            "episodes_per_object": ev["episodes_per_object"], "seed": ev["seed"],
            "kept_episodes": {o: c["episodes"] for o, c in counts.items()},
            "dataset_steps": int(rec["dataset"]["steps"]), "train_steps": int(t["step"]),
            "train_minutes": round(float(t["wall_s"]) / 60, 1),
            "validation_executed_row_mse": t.get("validation_executed_row_mse")}


def markdown(rows: dict[str, dict[str, Any]], objects: Sequence[str]) -> str:
    r0 = next(iter(rows.values()))
    lines = ["# grasp_reach generalists by grouping (paper: all / shape / mix / single)", "",
             f"One generalist per grouping (cpu profile, {r0['train_steps']} steps on "
             f"{r0['dataset_steps']:,} kept steps), randomized (the specialists' training profile), from the "
             f"ready pose, {r0['episodes_per_object']} episodes per object, seed {r0['seed']}. In "
             "brackets: the object's own group specialist in the first stage (`./dev bench groupings`: "
             "another seed, 64 episodes).", "",
             "| grouping | specialists | generalist mean | its specialists' mean | train min | row MSE | "
             + " | ".join(objects) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(objects)]
    for g, r in rows.items():
        cells = [f"{100 * r['success'][o]:.0f}% ({100 * r['specialist_success'][o]:.0f}%)"
                 if o in r["success"] else "-" for o in objects]
        mse = r["validation_executed_row_mse"]
        lines.append(f"| {g} | {r['specialists']} | {100 * r['mean']:.1f}% | "
                     f"{100 * r['specialist_mean']:.1f}% | {r['train_minutes']} | "
                     f"{f'{mse:.1e}' if mse is not None else '-'} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Kept episodes per object in each grouping's dataset:", "",
              "| grouping | " + " | ".join(objects) + " |", "|---|" + "---|" * len(objects)]
    for g, r in rows.items():
        lines.append(f"| {g} | " + " | ".join(str(r["kept_episodes"].get(o, 0)) for o in objects) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: dict[str, dict[str, Any]], objects: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(objects) + 1)
    for k, (g, r) in enumerate(rows.items()):
        vals = [100 * r["success"].get(o, 0.0) for o in objects] + [100 * r["mean"]]
        ax.bar(x + k * width, vals, width, label=f"{g} ({r['specialists']} spec.)")
    ax.set_xticks(x + width * (len(rows) - 1) / 2, [*objects, "mean"], rotation=20, fontsize=8)
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 100)
    ax.set_title("grasp_reach generalists distilled per grouping")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groupings", nargs="+", default=list(GROUPINGS), choices=GROUPINGS)
    p.add_argument("--out", type=Path, default=Path("runs/bench/grouping_generalists"))
    p.add_argument("--specialists-from", type=Path, default=Path("runs/bench/groupings"),
                   help="the groupings benchmark's --out (its evaluated sub-task checkpoints)")
    p.add_argument("--from-packages", nargs="*", default=[], choices=GROUPINGS, metavar="GROUPING",
                   help="take these groupings' specialists from their committed packages")
    p.add_argument("--objects", nargs="+", default=list(DEFAULT_OBJECTS), help="evaluation objects")
    p.add_argument("--steps", type=int, default=28000, help="kept policy steps per grouping's dataset")
    p.add_argument("--train-steps", type=int, default=4000, help="optimizer steps per generalist")
    p.add_argument("--eval-episodes", type=int, default=64, help="episodes per object")
    p.add_argument("--eval-seed", type=int, default=3535)
    p.add_argument("--collect-seed", type=int, default=31000)
    p.add_argument("--threads", type=int, default=1, help="threads of every stage")
    p.add_argument("--report-only", action="store_true", help="only aggregate what is already in --out")
    a = p.parse_args(argv)
    if min(a.steps, a.train_steps, a.eval_episodes, a.threads) < 1:
        p.error("--steps, --train-steps, --eval-episodes and --threads must be >= 1")

    from recipe_common.checkpoint_io import write_json
    from recipe_policy.generalist import read_record

    rows: dict[str, dict[str, Any]] = {}
    for g in a.groupings:
        ev = a.out / g / "eval" / "eval.json"
        if not a.report_only:
            ev = run_grouping(g, a) or ev
        if not ev.is_file():
            print(f"grouping_generalists: {g}: not evaluated yet; skipped", file=sys.stderr)
            continue
        sources = json.loads((a.out / g / "sources.json").read_text())
        rows[g] = grouping_row(g, json.loads(ev.read_text()),
                               read_record(a.out / g / "generalist" / "policy.safetensors"),
                               specialist_success(sources))
    if not rows:
        print("grouping_generalists: nothing to report", file=sys.stderr)
        return 1
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "grouping_generalists.json", {"task": "grasp_reach", "objects": list(a.objects),
                                                     "groupings": rows})
    table = markdown(rows, a.objects)
    (a.out / "grouping_generalists.md").write_text(table)
    plot(rows, a.objects, a.out / "grouping_generalists.png")
    print(table)
    print(f"wrote {a.out}/grouping_generalists.json, .md, .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
