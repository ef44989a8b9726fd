"""Reading an exported actor: TorchScript or ONNX with its JSON sidecar, without pickle or the simulator.

``recipe_sim.ppo.export`` writes these files (the rsl-rl actor with its observation normalizer baked in);
this module is the one reader, used by the simulator's evaluation and by the policy node on the robot
workstation, where recipe_sim need not be installed. The sidecar (``<stem>.json``) records the observation
and action sizes so that a wrongly shaped input is rejected with a clear message.

A loaded policy checks its outputs: at load it runs once on a zero observation (and a TorchScript file's
tensors are checked by name), and every call refuses an action that is not finite or not ``action_dim``
long. A NaN weight (a diverged run, a corrupted copy) so fails at load with the file named, instead of
sending NaN actions to the robot.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common.checkpoint_io import read_json_object

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
        self.check_output(y, x.shape[0])
        return y[0] if single else y

    def check_output(self, y: np.ndarray, batch: int) -> None:
        width_ok = self.action_dim is None or (y.ndim == 2 and y.shape[1] == self.action_dim)
        if y.ndim != 2 or y.shape[0] != batch or not width_ok:
            raise ExportError(f"{self.path}: the policy returned shape {y.shape} for {batch} observation(s), "
                              f"expected ({batch}, {self.action_dim})")
        if not np.isfinite(y).all():
            raise ExportError(f"{self.path}: the policy returned NaN or inf actions for a finite observation "
                              f"(a NaN or inf weight in the file?); not using it")


def read_export_info(path: Path) -> dict[str, Any]:
    """The sidecar JSON of an exported file (empty when there is none); a malformed one raises ExportError."""
    info_path = Path(path).with_suffix(INFO_SUFFIX)
    if not info_path.is_file():
        return {}
    info = read_json_object(info_path, ExportError)
    if info.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{info_path}: format {info.get('format')!r} is not {EXPORT_FORMAT!r}")
    for key in ("obs_dim", "action_dim"):
        value = info.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ExportError(f"{info_path}: '{key}' must be a positive integer, got {value!r}")
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
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ExportError(f"{path}: tensor '{name}' contains NaN or inf; not using this policy")

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
    policy = ExportedPolicy(path, run, obs_dim, action_dim, info)
    if obs_dim is not None:  # one forward pass on a zero observation: NaN weights show up here
        try:
            probe = np.asarray(run(np.zeros((1, obs_dim), dtype=np.float32)), dtype=np.float32)
        except Exception as exc:  # wrong input size for this graph, ...
            raise ExportError(f"{path}: the policy fails on a ({obs_dim},) observation: {exc}") from exc
        policy.check_output(probe, 1)
        if policy.action_dim is None:
            policy.action_dim = int(probe.shape[1])
    return policy
