"""Specialists committed inside the package: the exported actor of one training run with its record.

Later stages (rollouts for distillation, the deployment demo) need a real trained policy without
retraining it or shipping the 14 MB training checkpoint (critic and optimizer included). A packaged
specialist is a folder under ``recipe_sim/data/specialists/<name>/`` holding

* ``policy.ts`` and ``policy.onnx`` with their ``policy.json`` sidecar (obs/action sizes, layout): the
  actor with its observation normalizer baked in, loadable without pickle (``load_exported_policy``);
* ``metadata.json``: the checkpoint's metadata (config, git commit, task, objects, randomization,
  training metrics at save time);
* ``eval.json``: the ``eval`` report of that checkpoint (success per object and condition);
* ``training_curve.json``: per-iteration statistics of the run, when the run finished normally.

``package_specialist`` builds such a folder from a run (``python -m recipe_sim.ppo.packaged``); it
refuses a run whose files do not belong together, so a packaged record always describes its policy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_sim.ppo.checkpoint import CheckpointError, read_metadata
from recipe_sim.ppo.export import ExportedPolicy, load_exported_policy

SPECIALISTS_DIR = Path(__file__).resolve().parent.parent / "data" / "specialists"
POLICY_FILES = ("policy.ts", "policy.onnx", "policy.json")
CURVE_POINTS = 200


@dataclass(frozen=True)
class PackagedSpecialist:
    name: str
    path: Path
    metadata: dict[str, Any]
    eval_report: dict[str, Any]

    def policy(self, fmt: str = "ts") -> ExportedPolicy:
        """The actor as TorchScript (``ts``) or ONNX (``onnx``)."""
        if fmt not in ("ts", "onnx"):
            raise ValueError(f"format must be 'ts' or 'onnx', got {fmt!r}")
        return load_exported_policy(self.path / f"policy.{fmt}")

    def success_rate(self, condition: str = "randomized") -> float | None:
        """Overall success of the packaged eval under ``condition`` (None if not evaluated)."""
        row = self.eval_report.get("conditions", {}).get(condition, {}).get("_overall")
        return None if row is None else row.get("success_rate")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def available() -> list[str]:
    return sorted(p.name for p in SPECIALISTS_DIR.iterdir() if p.is_dir()) if SPECIALISTS_DIR.is_dir() else []


def load_specialist(name: str, root: Path | None = None) -> PackagedSpecialist:
    """A packaged specialist by folder name; checks that its files describe the same policy."""
    path = (root or SPECIALISTS_DIR) / name
    if not path.is_dir():
        raise FileNotFoundError(f"no packaged specialist {name!r} in {path.parent} (have: {available()})")
    meta = _read_json(path / "metadata.json")
    report = _read_json(path / "eval.json")
    info = _read_json(path / "policy.json")
    for f in POLICY_FILES:
        if not (path / f).is_file():
            raise FileNotFoundError(f"{path / f}: missing")
    _check_consistent(meta, report, info, str(path))
    return PackagedSpecialist(name, path, meta, report)


def _check_consistent(meta: dict[str, Any], report: dict[str, Any], info: dict[str, Any], where: str) -> None:
    it = meta.get("iteration")
    if report.get("iteration") != it or info.get("iteration") != it:
        raise ValueError(
            f"{where}: metadata is iteration {it}, eval.json {report.get('iteration')}, "
            f"policy.json {info.get('iteration')}: the files come from different checkpoints"
        )
    if report.get("task") != meta.get("task") or info.get("task") != meta.get("task"):
        raise ValueError(f"{where}: task differs between metadata, eval.json and policy.json")


def export_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """Export (and verify) the actor of any saved checkpoint, e.g. one picked by eval before the last."""
    from recipe_sim.ppo.envs import SubTask, make_env, randomization_config
    from recipe_sim.ppo.evaluation import load_actor
    from recipe_sim.ppo.export import export_actor, verify_export

    meta = read_metadata(checkpoint)
    sub = SubTask(meta["task"], meta["object_group"], 0, tuple(meta["objects"]))
    env = make_env(sub, 2, 0, randomization_config(False), no_init_states=True)
    try:
        actor, _ = load_actor(checkpoint, env)
        info = {
            "task": meta["task"],
            "objects": list(meta["objects"]),
            "iteration": meta["iteration"],
            "obs_layout": env.cfg.get("policy_obs"),
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
