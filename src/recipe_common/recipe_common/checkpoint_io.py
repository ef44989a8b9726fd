"""Safe checkpoint I/O shared by every package that reads or writes weights.

Checkpoints get shared (a committed policy, a colleague's run), so nothing here unpickles: tensors are
read with ``torch.load(weights_only=True)`` or safetensors, JSON records are written atomically, and every
file carries its SHA-256 and the git commit that produced it. torch is imported only by the functions
that need it, so importing this module stays cheap for the driver.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class CheckpointError(RuntimeError):
    """A checkpoint or its record cannot be used; the message names the file and the problem."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit(repo_dir: str | Path | None = None) -> dict[str, Any]:
    """HEAD commit and whether tracked files differ from it; read-only (no index refresh)."""
    cwd = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status.strip())}


def json_number(value: float | int | None) -> float | int | None:
    """NaN/inf become null: JSON has no NaN."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (temp file + rename): a crash never leaves half a record."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def read_json_object(path: str | Path, error: type[Exception] = CheckpointError) -> dict[str, Any]:
    """A JSON object from ``path``; a missing file, bad JSON or another top-level type raise ``error``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_torch_weights(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` on CPU: tensors and plain containers only, never pickled code."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable weights-only checkpoint ({exc})") from None


def check_finite_state(state: Mapping[str, Any], where: str) -> None:
    """Every floating tensor of a state dict is finite (a diverged run must not be loaded silently)."""
    import torch

    if not isinstance(state, Mapping):
        raise CheckpointError(f"{where}: expected a state dict, got {type(state).__name__}")
    for name, tensor in state.items():
        if isinstance(tensor, Mapping):
            check_finite_state(tensor, f"{where}.{name}")
            continue
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{where}: entry {name!r} is {type(tensor).__name__}, not a tensor")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{where}: '{name}' contains NaN or inf (training diverged?)")
