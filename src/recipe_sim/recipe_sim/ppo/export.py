"""Deployable actor: TorchScript and ONNX files with the observation normalizer baked in.

The robot-side process should not need rsl-rl, the training config or pickle to run a policy: the
exported graph maps the flat "policy" observation (already in the env's layout and units) straight to
the action vector, normalizer included. A small JSON next to the files records the observation and
action sizes so ``load_exported_policy`` (recipe_policy.exported, the one reader) can reject a wrongly
shaped input with a clear message. ``verify_export`` checks both files against the torch actor they came
from.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The reader lives in recipe_policy (the policy node loads exported actors without the simulator); this
# module keeps the writer and the check against the torch actor, and re-exports the reader's names.
from recipe_policy.exported import (  # noqa: F401
    EXPORT_FORMAT,
    INFO_SUFFIX,
    ONNX_SUFFIX,
    TORCHSCRIPT_SUFFIX,
    ExportedPolicy,
    ExportError,
    load_exported_policy,
)
from recipe_policy.exported import quiet_jit as _quiet_jit


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
