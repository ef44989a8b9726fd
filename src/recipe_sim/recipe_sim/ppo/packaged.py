"""Specialists committed inside the package: the exported actor of one training run with its record.

Later stages (rollouts for distillation, the deployment demo) need a real trained policy without
retraining it or shipping the 14 MB training checkpoint (critic and optimizer included). A packaged
specialist is a folder under ``recipe_sim/data/specialists/<name>/`` holding

* ``policy.ts`` and ``policy.onnx`` with their ``policy.json`` sidecar (obs/action sizes, layout): the
  actor with its observation normalizer baked in, loadable without pickle (``load_exported_policy``);
* ``metadata.json``: the checkpoint's metadata (config, git commit, task, objects, randomization,
  training metrics at save time);
* ``eval.json``: the ``eval`` report of that checkpoint (success per object and condition; evaluated as
  deployed, through a driver's command path, where its ``command_path`` names one);
* ``training_curve.json``: per-iteration statistics of the run, when the run finished normally.

``package_specialist`` builds such a folder from a run (``python -m recipe_sim.ppo.packaged``); it
refuses a run whose files do not belong together, so a packaged record always describes its policy.
Reading a package is ``recipe_policy.specialist`` (also what ``recipe_policy.loading.load_policy`` uses).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from recipe_policy.specialist import POLICY_FILES, PackagedSpecialist
from recipe_policy.specialist import available as _available
from recipe_policy.specialist import check_consistent as _check_consistent
from recipe_policy.specialist import load_specialist as _load_specialist
from recipe_policy.specialist import read_json as _read_json
from recipe_sim.ppo.checkpoint import CheckpointError, read_metadata

SPECIALISTS_DIR = Path(__file__).resolve().parent.parent / "data" / "specialists"
CURVE_POINTS = 200


def available() -> list[str]:
    return _available(SPECIALISTS_DIR)


def load_specialist(name: str, root: Path | None = None) -> PackagedSpecialist:
    """A packaged specialist by folder name; checks that its files describe the same policy (the reader is
    recipe_policy.specialist, which the policy node uses without the simulator)."""
    return _load_specialist(name, root or SPECIALISTS_DIR)


def export_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """Export (and verify) the actor of any saved checkpoint, e.g. one picked by eval before the last."""
    from recipe_sim.ppo.envs import SubTask, make_env, randomization_config, recorded_task_overrides
    from recipe_sim.ppo.evaluation import load_actor
    from recipe_sim.ppo.export import export_actor, verify_export

    meta = read_metadata(checkpoint)
    sub = SubTask(meta["task"], meta["object_group"], 0, tuple(meta["objects"]))
    overrides = recorded_task_overrides(meta)
    env = make_env(sub, 2, 0, randomization_config(False), no_init_states=True, task_overrides=overrides)
    try:
        actor, _ = load_actor(checkpoint, env)
        info = {
            "task": meta["task"],
            "objects": list(meta["objects"]),
            "iteration": meta["iteration"],
            "obs_layout": env.cfg.get("policy_obs"),
            "object_pos_filter": overrides["object_pos_filter"],
        }
        files = export_actor(actor, out_dir, info=info)
        verify_export(actor, files, obs=env.get_observations()["policy"])
    finally:
        env.close()
    return out_dir


def thin_curve(curve: dict[str, Any], max_points: int = CURVE_POINTS) -> dict[str, Any]:
    """The run's curve with at most ``max_points`` evenly spaced iterations (the last one kept): an hour's
    2,000 iterations with their extras are 1.4 MB, too much to commit for a plot."""
    its = list(curve.get("iterations") or [])
    if len(its) <= max_points:
        return curve
    step = -(-len(its) // max_points)
    kept = its[::step]
    if kept[-1] is not its[-1]:
        kept.append(its[-1])
    return {**curve, "iterations": kept, "thinned_every": step}


def package_specialist(checkpoint: Path, eval_json: Path, name: str, root: Path | None = None) -> Path:
    """Copy a checkpoint's exported actor, metadata, eval report and curve into the package.

    The run's ``exported/`` folder holds the last iteration's actor; another checkpoint is exported
    next to itself (``exported_<it>/``) first.
    """
    checkpoint = Path(checkpoint)
    run_dir = checkpoint.resolve().parent
    meta = read_metadata(checkpoint)
    report = _read_json(Path(eval_json))
    exported = run_dir / "exported"
    info = _read_json(exported / "policy.json") if (exported / "policy.json").is_file() else {}
    if info.get("iteration") != meta.get("iteration"):  # another checkpoint, or a run trained --no-export
        exported = export_checkpoint(checkpoint, run_dir / f"exported_{meta.get('iteration')}")
        info = _read_json(exported / "policy.json")
    _check_consistent(meta, report, info, str(run_dir))
    dest = (root or SPECIALISTS_DIR) / name
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in POLICY_FILES:
        shutil.copy2(exported / f, tmp / f)
    (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    report = {**report, "checkpoint": f"{checkpoint.name} (run {run_dir.name})"}
    (tmp / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    curve = run_dir / "training_curve.json"
    if curve.is_file():
        (tmp / "training_curve.json").write_text(json.dumps(thin_curve(_read_json(curve)), indent=1) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Package a trained specialist (exported actor + record).")
    p.add_argument("--checkpoint", type=Path, required=True, help="the model_<it>.pt whose export to package")
    p.add_argument("--eval", type=Path, required=True, help="eval.json of that checkpoint")
    p.add_argument("--name", required=True, help="folder name under recipe_sim/data/specialists/")
    a = p.parse_args(argv)
    try:
        dest = package_specialist(a.checkpoint, a.eval, a.name)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"package: error: {exc}", file=sys.stderr)
        return 1
    print(f"packaged {a.checkpoint} as {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
