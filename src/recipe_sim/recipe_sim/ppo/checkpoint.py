"""Checkpoint files: rsl-rl's torch.save dict, read back without unpickling, plus a metadata.json each.

rsl-rl's own ``OnPolicyRunner.load`` calls ``torch.load`` with ``weights_only=False``, which runs arbitrary
pickled code from the file. Checkpoints get shared (a committed specialist, a colleague's run), so
every load here goes through ``torch.load(weights_only=True)`` and a structure check; a truncated,
corrupted or foreign file becomes a ``CheckpointError`` that says which file and what is wrong.

Each ``model_<it>.pt`` gets a ``model_<it>.metadata.json`` next to it: what produced it (config, git
commit, task, object group, seed), where training stood (iteration, env steps, wall time) and how well
it did at that moment (success rate, mean reward). The metadata carries the checkpoint's SHA-256 so a
metadata file that was copied next to the wrong checkpoint is caught.
"""

from __future__ import annotations

import datetime
import math
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from recipe_common.checkpoint_io import (
    CheckpointError,
    check_finite_state,
    file_sha256,
    git_commit,
    json_number,
    read_json_object,
    write_json,
)

METADATA_FORMAT = "recipe_sim/ppo_checkpoint/v1"
REQUIRED_STATE_KEYS = ("actor_state_dict", "critic_state_dict", "optimizer_state_dict", "iter")
REQUIRED_METADATA_KEYS = (
    "format",
    "checkpoint",
    "sha256",
    "config",
    "git_commit",
    "task",
    "object_group",
    "objects",
    "seed",
    "iteration",
    "metrics",
    "created",
)
REQUIRED_METRICS = ("success_rate", "mean_reward", "env_steps", "wall_time_s")


def metadata_path(checkpoint: str | Path) -> Path:
    """``runs/x/model_40.pt`` -> ``runs/x/model_40.metadata.json``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".metadata.json")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint safely (tensors and plain containers only) and check its structure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable PPO checkpoint (corrupted, truncated, or contains "
            f"non-tensor objects that weights_only loading refuses): {first_line}"
        ) from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of state dicts, got {type(data).__name__}")
    missing = [k for k in REQUIRED_STATE_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: missing {missing}; is this an rsl-rl PPO checkpoint?")
    if not isinstance(data["iter"], int) or data["iter"] < 0:
        raise CheckpointError(f"{path}: 'iter' must be a non-negative integer, got {data['iter']!r}")
    for key in ("actor_state_dict", "critic_state_dict"):
        check_finite_state(data[key], f"{path}: {key}")
    check_finite_tree(data["optimizer_state_dict"], f"{path}: optimizer_state_dict")
    return data


def check_finite_tree(obj: Any, where: str) -> None:
    """Every tensor and float in a nested optimizer state (dicts, lists, tuples) is finite.

    A run that diverged can save finite weights with NaN Adam moments (or a NaN learning rate); resuming
    from it then fails inside torch a few iterations later without naming the file. Caught here instead.
    """
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and not torch.isfinite(obj).all():
            raise CheckpointError(f"{where} contains NaN or inf (training diverged before this save?); "
                                  f"resume from an earlier checkpoint")
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise CheckpointError(f"{where} is {obj} (training diverged before this save?); "
                                  f"resume from an earlier checkpoint")
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            check_finite_tree(value, f"{where}.{key}")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            check_finite_tree(value, f"{where}[{i}]")


def check_state_matches(state: Mapping[str, torch.Tensor], module: torch.nn.Module, where: str) -> None:
    """Raise naming the first missing/extra/mis-shaped tensor instead of torch's multi-page message."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{where}: parameters do not match the model (missing {missing[:5]}, "
            f"unexpected {extra[:5]}); was it trained with another network config?"
        )
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{where}: '{name}' has shape {tuple(state[name].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in the model (different observation/action size or "
                f"hidden_dims?)"
            )


def build_metadata(
    checkpoint: str | Path,
    *,
    config: Mapping[str, Any],
    task: str,
    object_group: str,
    objects: list[str],
    seed: int,
    iteration: int,
    metrics: Mapping[str, float | int | None],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata dict for a checkpoint that has just been written."""
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise ValueError(f"metrics: missing {missing}")
    git = git_commit()
    meta: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "checkpoint": Path(checkpoint).name,
        "sha256": file_sha256(checkpoint),
        "config": dict(config),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "task": task,
        "object_group": object_group,
        "objects": list(objects),
        "seed": int(seed),
        "iteration": int(iteration),
        "iterations_done": int(iteration) + 1,
        "metrics": {k: json_number(v) for k, v in metrics.items()},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
    }
    if extra:
        meta.update(extra)
    return meta


def write_metadata(checkpoint: str | Path, metadata: Mapping[str, Any]) -> Path:
    path = metadata_path(checkpoint)
    return write_json(path, metadata)


def read_metadata(checkpoint: str | Path, verify_hash: bool = True) -> dict[str, Any]:
    """Metadata of a checkpoint, checked for the required fields and (optionally) the checkpoint hash."""
    path = metadata_path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"{path}: no metadata next to checkpoint {Path(checkpoint).name}")
    meta = read_json_object(path, CheckpointError)
    missing = [k for k in REQUIRED_METADATA_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: missing field(s) {missing}")
    if meta["format"] != METADATA_FORMAT:
        raise CheckpointError(f"{path}: format {meta['format']!r} is not {METADATA_FORMAT!r}")
    missing_metrics = [k for k in REQUIRED_METRICS if k not in meta["metrics"]]
    if missing_metrics:
        raise CheckpointError(f"{path}: metrics missing {missing_metrics}")
    if verify_hash and Path(checkpoint).is_file() and file_sha256(checkpoint) != meta["sha256"]:
        raise CheckpointError(
            f"{path}: SHA-256 does not match {Path(checkpoint).name}; the metadata belongs to "
            f"another checkpoint or the checkpoint was modified"
        )
    return meta


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The ``model_<it>.pt`` with the highest iteration in a run directory."""
    run_dir = Path(run_dir)
    found = []
    for p in run_dir.glob("model_*.pt"):
        suffix = p.stem.removeprefix("model_")
        if suffix.isdigit():
            found.append((int(suffix), p))
    if not found:
        raise CheckpointError(f"{run_dir}: no model_<iteration>.pt checkpoints")
    return max(found)[1]
