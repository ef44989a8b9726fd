"""Reading an exported actor: TorchScript or ONNX with its JSON sidecar, without pickle or the simulator.

``recipe_sim.ppo.export`` writes these files (the rsl-rl actor with its observation normalizer baked in);
this module is the one reader, used by the simulator's evaluation and by the policy node on the robot
workstation, where recipe_sim need not be installed. The sidecar (``<stem>.json``) records the observation
and action sizes so that a wrongly shaped input is rejected with a clear message.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

EXPORT_FORMAT = "recipe_sim/exported_policy/v1"  # the format name predates this module; files keep it
TORCHSCRIPT_SUFFIX = ".ts"
ONNX_SUFFIX = ".onnx"
INFO_SUFFIX = ".json"


class ExportError(RuntimeError):
    """An exported policy is missing, malformed, or does not match its source actor."""


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """torch 2.13 marks TorchScript deprecated; it is still what C++/Python robot-side loaders take."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class ExportedPolicy:
    """A loaded TorchScript or ONNX policy: ``policy(obs)`` with obs (obs_dim,) or (N, obs_dim) float."""

    def __init__(
        self,
        path: Path,
        run: Callable[[np.ndarray], np.ndarray],
        obs_dim: int | None,
        action_dim: int | None,
        info: dict[str, Any],
    ):
        self.path = path
        self._run = run
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.info = info

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        if single:
            x = x[None]
        if x.ndim != 2 or (self.obs_dim is not None and x.shape[1] != self.obs_dim):
            raise ValueError(
                f"{self.path.name}: observation must have shape (obs_dim,) or (N, obs_dim) with "
                f"obs_dim={self.obs_dim}, got {np.shape(obs)}"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"{self.path.name}: observation contains NaN or inf")
        y = np.asarray(self._run(x), dtype=np.float32)
        return y[0] if single else y


def read_export_info(path: Path) -> dict[str, Any]:
    """The sidecar JSON of an exported file (empty when there is none); a malformed one raises ExportError."""
    info_path = Path(path).with_suffix(INFO_SUFFIX)
    if not info_path.is_file():
        return {}
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{info_path}: malformed JSON: {exc}") from exc
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
        got = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise ExportError(f"{info_path}: format {got!r} is not {EXPORT_FORMAT!r}")
    return info


def load_exported_policy(path: str | Path) -> ExportedPolicy:
    """Load ``.ts`` (TorchScript) or ``.onnx`` (onnxruntime, CPU) without pickle; sizes from the sidecar."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such exported policy")
    info = read_export_info(path)
    obs_dim, action_dim = info.get("obs_dim"), info.get("action_dim")
    run: Callable[[np.ndarray], np.ndarray]
    if path.suffix == TORCHSCRIPT_SUFFIX:
        import torch

        try:
            with quiet_jit():
                module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ExportError(f"{path}: not a loadable TorchScript file: {str(exc).splitlines()[0]}") from exc
        module.eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()
    elif path.suffix == ONNX_SUFFIX:
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ExportError(f"{path}: not a loadable ONNX model: {exc}") from exc
        input_name = session.get_inputs()[0].name
        shape = session.get_inputs()[0].shape
        if obs_dim is None and isinstance(shape[-1], int):
            obs_dim = shape[-1]

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: x})[0]
    else:
        raise ExportError(
            f"{path}: unknown policy format {path.suffix!r}; expected {TORCHSCRIPT_SUFFIX} or {ONNX_SUFFIX}"
        )
    return ExportedPolicy(path, run, obs_dim, action_dim, info)
