"""``load_policy``: the one way to load any deployable policy, without the simulator.

``ref`` may be

* a packaged specialist folder (``policy.ts`` + ``policy.json`` + ``metadata.json`` + ``eval.json``), or the
  name of one under a search root;
* an exported actor file (``.ts`` / ``.onnx`` with its ``.json`` sidecar);
* a generalist checkpoint: a ``.safetensors`` file written by ``recipe_policy.generalist``, a folder
  holding ``policy.safetensors``, or the name of one under a search root.

Search roots for names, in order: ``$RECIPE_POLICY_PATH`` (``os.pathsep``-separated folders), the committed
generalists (``recipe_policy/data/generalists``), and the packaged specialists of recipe_sim
(``recipe_sim/data/specialists``) when that package is installed; it is located, not imported, so the
policy node never pulls in the simulator.

PPO *training* checkpoints (``model_<it>.pt``, actor + critic + optimizer) are not deployable: package or
export them first (``python -m recipe_sim.ppo.packaged``); only recipe_sim.ppo reads them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from recipe_policy.exported import ONNX_SUFFIX, TORCHSCRIPT_SUFFIX, ExportError, load_exported_policy
from recipe_policy.interface import DeployablePolicy
from recipe_policy.specialist import (
    SpecialistPolicy,
    is_specialist_dir,
    read_json,
    read_specialist,
    specialist_spec,
)

GENERALISTS_DIR = Path(__file__).resolve().parent / "data" / "generalists"
GENERALIST_FILE = "policy.safetensors"
SAFETENSORS_SUFFIX = ".safetensors"


class PolicyLoadError(RuntimeError):
    """``ref`` names no loadable policy; the message says what was tried."""


def search_roots() -> list[Path]:
    roots = [Path(p) for p in os.environ.get("RECIPE_POLICY_PATH", "").split(os.pathsep) if p]
    roots.append(GENERALISTS_DIR)
    try:
        spec = importlib.util.find_spec("recipe_sim")  # locates the package without importing it
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) / "data" / "specialists" for p in spec.submodule_search_locations]
    return roots


def resolve(ref: str | Path) -> Path:
    """The file or folder ``ref`` refers to (a path as given, else a name under the search roots)."""
    path = Path(ref)
    if path.exists():
        return path
    if len(path.parts) == 1:
        for root in search_roots():
            for cand in (root / path.name, root / f"{path.name}{SAFETENSORS_SUFFIX}"):
                if cand.exists():
                    return cand
    raise PolicyLoadError(
        f"no policy {str(ref)!r}: not a path, and no folder of that name under "
        f"{[str(r) for r in search_roots()]}"
    )


def load_policy(
    ref: str | Path,
    fmt: str = "ts",
    inference_steps: int = 0,
    initial_noise_scale: float | None = None,
    timestep_spacing: str | None = None,
) -> DeployablePolicy:
    """Load a specialist (folder, name or exported file) or a generalist (safetensors, folder or name).

    ``fmt`` picks the exported format of a specialist folder: ``ts`` (TorchScript) or ``onnx``.
    A generalist's sampler (specialists ignore both): ``inference_steps`` DDIM steps per chunk (0 = its
    profile's), ``initial_noise_scale`` of the Gaussian each chunk starts from (None = its profile's),
    ``timestep_spacing`` of the DDIM steps (None = its profile's).
    """
    policy = _load_policy(ref, fmt)
    if hasattr(policy, "model"):
        if inference_steps:
            policy.model.set_inference_steps(inference_steps)
        if initial_noise_scale is not None:
            policy.model.set_initial_noise_scale(initial_noise_scale)
        if timestep_spacing:
            policy.model.set_timestep_spacing(timestep_spacing)
    return policy


def _load_policy(ref: str | Path, fmt: str) -> DeployablePolicy:
    path = resolve(ref)
    if path.is_dir():
        if (path / GENERALIST_FILE).is_file():
            return _load_generalist(path / GENERALIST_FILE)
        if is_specialist_dir(path):
            pkg = read_specialist(path)
            info = read_json(path / "policy.json")
            return SpecialistPolicy(pkg.policy(fmt), specialist_spec(info, pkg.metadata), path)
        raise PolicyLoadError(
            f"{path}: neither a packaged specialist (policy.json + metadata.json) nor a "
            f"generalist folder ({GENERALIST_FILE})"
        )
    if path.suffix == SAFETENSORS_SUFFIX:
        return _load_generalist(path)
    if path.suffix in (TORCHSCRIPT_SUFFIX, ONNX_SUFFIX):
        actor = load_exported_policy(path)
        if not actor.info:
            raise ExportError(
                f"{path}: no {path.with_suffix('.json').name} sidecar; its input layout is unknown"
            )
        meta_path = path.parent / "metadata.json"
        meta = read_json(meta_path) if meta_path.is_file() else None
        return SpecialistPolicy(actor, specialist_spec(actor.info, meta), path)
    if path.suffix == ".pt":
        raise PolicyLoadError(
            f"{path}: a PPO training checkpoint is not deployable; export or package it "
            "(python -m recipe_sim.ppo.packaged --checkpoint ... --eval ... --name ...)"
        )
    raise PolicyLoadError(
        f"{path}: unknown policy file type {path.suffix!r} (expected a specialist folder, "
        f"{TORCHSCRIPT_SUFFIX}, {ONNX_SUFFIX} or {SAFETENSORS_SUFFIX})"
    )


def _load_generalist(path: Path) -> DeployablePolicy:
    from recipe_policy.generalist import load_generalist

    return load_generalist(path)
