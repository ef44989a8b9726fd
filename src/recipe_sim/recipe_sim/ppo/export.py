"""Deployable actor: TorchScript and ONNX files with the observation normalizer baked in.

The robot-side process should not need rsl-rl, the training config or pickle to run a policy: the
exported graph maps the flat "policy" observation (already in the env's layout and units) straight to
the action vector, normalizer included. A small JSON next to the files records the observation and
action sizes so ``load_exported_policy`` can reject a wrongly-shaped input with a clear message.
``verify_export`` checks both files against the torch actor they came from.

A loaded policy checks its outputs: at load it runs once on a zero observation (and a TorchScript
file's tensors are checked by name), and every call refuses an action that is not finite or not
``action_dim`` long. A NaN weight (a diverged run, a corrupted copy) so fails at load with the file
named, instead of sending NaN actions to the robot.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXPORT_FORMAT = "recipe_sim/exported_policy/v1"
TORCHSCRIPT_SUFFIX = ".ts"
ONNX_SUFFIX = ".onnx"
INFO_SUFFIX = ".json"


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """torch 2.13 marks TorchScript deprecated; it is still what C++/Python robot-side loaders take."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class ExportError(RuntimeError):
    """An exported policy is missing, malformed, or does not match its source actor."""


@dataclass(frozen=True)
class ExportedFiles:
    torchscript: Path
    onnx: Path
    info: Path


def export_actor(
    actor: torch.nn.Module, out_dir: str | Path, stem: str = "policy", info: Mapping[str, Any] | None = None
) -> ExportedFiles:
    """Write ``<stem>.ts`` (TorchScript), ``<stem>.onnx`` and ``<stem>.json`` for an rsl-rl MLPModel actor.

    ``actor`` must provide rsl-rl's ``as_jit()``/``as_onnx()`` (normalizer + MLP + deterministic head).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    obs_dim = int(actor.obs_dim)
    was_training = actor.training
    actor.eval()
    try:
        with _quiet_jit():
            jit_model = torch.jit.script(actor.as_jit().to("cpu").eval())
        ts_path = out_dir / f"{stem}{TORCHSCRIPT_SUFFIX}"
        jit_model.save(str(ts_path))
        onnx_model = actor.as_onnx(verbose=False).to("cpu").eval()
        onnx_path = out_dir / f"{stem}{ONNX_SUFFIX}"
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated but is fast, quiet and handles a dynamic batch
            # axis for this plain MLP; the dynamo exporter takes seconds and needs torch.export specs.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                onnx_model,
                (torch.zeros(1, obs_dim),),
                str(onnx_path),
                opset_version=18,
                input_names=["obs"],
                output_names=["actions"],
                dynamo=False,
                dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}},
            )
        with torch.no_grad():
            action_dim = int(jit_model(torch.zeros(1, obs_dim)).shape[-1])
    finally:
        actor.train(was_training)
    meta = {
        "format": EXPORT_FORMAT,
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "input": "the env's flat 'policy' observation group, un-normalized (normalizer is inside)",
        "output": "deterministic action (policy mean), the env's action layout",
    }
    meta.update(info or {})
    info_path = out_dir / f"{stem}{INFO_SUFFIX}"
    info_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return ExportedFiles(ts_path, onnx_path, info_path)


class ExportedPolicy:
    """A loaded TorchScript or ONNX policy: ``policy(obs)`` with obs (obs_dim,) or (N, obs_dim) float."""

    def __init__(
        self, path: Path, run: Any, obs_dim: int | None, action_dim: int | None, info: dict[str, Any]
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
        self._check_output(y, x.shape[0])
        return y[0] if single else y

    def _check_output(self, y: np.ndarray, batch: int) -> None:
        width_ok = self.action_dim is None or (y.ndim == 2 and y.shape[1] == self.action_dim)
        if y.ndim != 2 or y.shape[0] != batch or not width_ok:
            raise ExportError(f"{self.path}: the policy returned shape {y.shape} for {batch} observation(s), "
                              f"expected ({batch}, {self.action_dim})")
        if not np.isfinite(y).all():
            raise ExportError(f"{self.path}: the policy returned NaN or inf actions for a finite observation "
                              f"(a NaN or inf weight in the file?); not using it")


def _read_info(info_path: Path) -> dict[str, Any]:
    """The sidecar JSON (format, obs_dim, action_dim): a JSON object with positive integer sizes."""
    from recipe_common.checkpoint_io import read_json_object

    info = read_json_object(info_path, ExportError)
    if info.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{info_path}: format {info.get('format')!r} is not {EXPORT_FORMAT!r}")
    for key in ("obs_dim", "action_dim"):
        value = info.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ExportError(f"{info_path}: '{key}' must be a positive integer, got {value!r}")
    return info


def load_exported_policy(path: str | Path) -> ExportedPolicy:
    """Load ``.ts`` (TorchScript) or ``.onnx`` (onnxruntime, CPU) without pickle; sizes from the sidecar.

    Refuses a file whose tensors or outputs are not finite (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such exported policy")
    info_path = path.with_suffix(INFO_SUFFIX)
    info: dict[str, Any] = _read_info(info_path) if info_path.is_file() else {}
    obs_dim, action_dim = info.get("obs_dim"), info.get("action_dim")
    if path.suffix == TORCHSCRIPT_SUFFIX:
        try:
            with _quiet_jit():
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
        policy._check_output(probe, 1)
        if policy.action_dim is None:
            policy.action_dim = int(probe.shape[1])
    return policy


def torch_actor_actions(actor: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """Deterministic actions of the rsl-rl actor itself, through its TensorDict forward pass."""
    from tensordict import TensorDict

    groups = list(actor.obs_groups)
    sizes = [int(s) for s in _group_sizes(actor, groups, int(obs.shape[-1]))]
    parts = torch.split(obs, sizes, dim=-1)
    batch = TensorDict(dict(zip(groups, parts, strict=True)), batch_size=[obs.shape[0]])
    was_training = actor.training
    actor.eval()
    try:
        with torch.no_grad():
            return actor(batch).detach().cpu()
    finally:
        actor.train(was_training)


def _group_sizes(actor: torch.nn.Module, groups: list[str], total: int) -> list[int]:
    if len(groups) == 1:
        return [total]
    sizes = getattr(actor, "obs_group_sizes", None)
    if sizes is None:
        raise ExportError(
            "actor has several observation groups but no 'obs_group_sizes' to split the input by"
        )
    return list(sizes)


def verify_export(
    actor: torch.nn.Module,
    files: ExportedFiles,
    obs: torch.Tensor | None = None,
    atol: float = 1e-4,
    num_samples: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Max |exported - torch| action difference for each format; raises ExportError above ``atol``.

    ``obs`` should be real observations (their scale exercises the normalizer); random ones are used
    if none are given.
    """
    if obs is None:
        gen = torch.Generator().manual_seed(seed)
        obs = torch.randn(num_samples, int(actor.obs_dim), generator=gen)
    obs = obs.detach().to("cpu", torch.float32)
    reference = torch_actor_actions(actor, obs).numpy()
    diffs: dict[str, float] = {}
    for label, path in (("torchscript", files.torchscript), ("onnx", files.onnx)):
        out = load_exported_policy(path)(obs.numpy())
        if out.shape != reference.shape:
            raise ExportError(f"{path}: output shape {out.shape} differs from the actor's {reference.shape}")
        diffs[label] = float(np.max(np.abs(out - reference)))
        if not diffs[label] <= atol:
            raise ExportError(f"{path}: actions differ from the torch actor by {diffs[label]:.3g} (> {atol})")
    return diffs
