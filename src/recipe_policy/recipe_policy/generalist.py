"""The distilled generalist as a file and as a DeployablePolicy.

A checkpoint is one ``.safetensors`` file: the network's weights (the EMA weights for a deployable
checkpoint: the paper evaluates and deploys the EMA) including the state/action normalizers and the
depth range, plus a JSON record in the safetensors header (``recipe`` key): the format, the profile it
was built from, the policy's task/hand/objects/goal layout and depth image, and the training and dataset
records. Nothing is unpickled, and the file alone rebuilds the policy.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipe_common.checkpoint_io import CheckpointError, check_finite_state, file_sha256
from recipe_common.policy_image import PolicyImageSpec
from recipe_policy.config import PolicyProfile, profile_from_dict
from recipe_policy.diffusion_model import DiffusionPolicyModel
from recipe_policy.interface import PolicySpec

FORMAT = "recipe_policy/generalist/v1"
META_KEY = "recipe"


def policy_spec_for(
    profile: PolicyProfile,
    task: str,
    hand: str,
    objects: list[str] | tuple[str, ...],
    has_goal: bool,
    depth: PolicyImageSpec | None,
) -> PolicySpec:
    return PolicySpec(
        kind="diffusion",
        task=task,
        hand=hand,
        objects=tuple(objects),
        has_goal=has_goal,
        uses_depth=profile.use_depth,
        uses_object_pos=profile.use_object_pos,
        n_obs_steps=profile.n_obs_steps,
        action_horizon=profile.action_horizon,
        action_dt=profile.action_dt,
        inference_period=profile.inference_period,
        depth=depth if profile.use_depth else None,
    )


def depth_spec_for(profile: PolicyProfile, head: PolicyImageSpec) -> PolicyImageSpec:
    """The head camera's policy image at the profile's resolution (same FOV and range)."""
    return PolicyImageSpec(
        width=profile.image.width,
        height=profile.image.height,
        fovy_deg=head.fovy_deg,
        near_m=head.near_m,
        far_m=head.far_m,
    )


def spec_to_dict(spec: PolicySpec) -> dict[str, Any]:
    d = asdict(spec)
    d["objects"] = list(spec.objects)
    return d


def spec_from_dict(d: dict[str, Any]) -> PolicySpec:
    d = dict(d)
    depth = d.pop("depth", None)
    return PolicySpec(
        **{
            **d,
            "objects": tuple(d["objects"]),
            "depth": PolicyImageSpec(**depth) if depth is not None else None,
        }
    )


class GeneralistPolicy:
    """A diffusion-policy generalist: ``predict`` one window, or ``predict_batch`` many (sim evaluation)."""

    def __init__(
        self,
        model: DiffusionPolicyModel,
        spec: PolicySpec,
        record: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.model = model.eval()
        self.spec = spec
        self.record = record or {}
        self.seed = seed
        # the sampler's random stream (public: callers that sample through ``model`` directly share it)
        self.generator = torch.Generator().manual_seed(seed)
        self._first = spec.n_obs_steps - 1  # chunk row of the newest observation

    def reset(self) -> None:
        """The policy keeps no episode state (the observation window lives in the runtime)."""
        return None

    def warm_up(self) -> None:
        """Ready the one-window path for a 5 Hz loop: the traced networks (``trace_single``) and one call
        on zeros (torch's first call allocates), so the first real inference is not an overrun."""
        self.model.trace_single()
        s = self.spec
        depths = None if s.depth is None else torch.zeros(1, s.n_obs_steps, s.depth.height, s.depth.width)
        self.model.sample(torch.zeros(1, s.n_obs_steps, s.state_dim), depths, torch.Generator())

    def predict(self, states: np.ndarray, depths: np.ndarray | None) -> np.ndarray:
        s, d = self.spec.check_inputs(states, depths)
        return self.predict_batch(s[None], None if d is None else d[None])[0]

    def predict_batch(self, states: np.ndarray, depths: np.ndarray | None) -> np.ndarray:
        """(B, n, D) states, (B, n, H, W) depths -> (B, action_horizon, 26) float64 actions."""
        st = torch.as_tensor(np.asarray(states, dtype=np.float32))
        dt = (
            None
            if depths is None or not self.spec.uses_depth
            else torch.as_tensor(np.asarray(depths, np.float32))
        )
        chunk = self.model.sample(st, dt, generator=self.generator)
        out = chunk[:, self._first : self._first + self.spec.action_horizon].double().numpy()
        return out


def save_generalist(
    path: str | Path,
    model: DiffusionPolicyModel,
    spec: PolicySpec,
    record: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model``'s weights (pass the EMA model for deployment) and its record to ``path``.

    ``half`` stores the network's weights as float16 (half the size, for committing; they are cast back to
    float32 on load) and keeps the normalizers and other buffers in float32.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = {n for n, _ in model.named_parameters()}
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().contiguous().cpu()
        state[k] = v.half() if half and k in params and v.is_floating_point() else v
    check_finite_state(state, str(path))
    meta = {
        "format": FORMAT,
        "profile": model.profile.to_dict(),
        "spec": spec_to_dict(spec),
        "has_goal": model.has_goal,
        "weights_dtype": "float16" if half else "float32",
        **(record or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    tmp.replace(path)
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """The JSON record of a generalist checkpoint (no weights loaded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such generalist checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if META_KEY not in header:
        raise CheckpointError(f"{path}: no '{META_KEY}' record in the safetensors header (not a generalist?)")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: malformed record: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}")
    return meta


def build_model(meta: dict[str, Any], where: str) -> tuple[DiffusionPolicyModel, PolicySpec, PolicyProfile]:
    profile_dict = dict(meta["profile"])
    profile = profile_from_dict(
        {k: v for k, v in profile_dict.items() if k != "name"}, profile_dict.get("name", "checkpoint")
    )
    spec = spec_from_dict(meta["spec"])
    head = spec.depth or PolicyImageSpec(profile.image.width, profile.image.height, 60.0)
    model = DiffusionPolicyModel(profile, bool(meta["has_goal"]), (head.near_m, head.far_m))
    return model, spec, profile


def load_generalist(path: str | Path, seed: int = 0) -> GeneralistPolicy:
    """A GeneralistPolicy from a checkpoint; shapes and finiteness are checked before use."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_record(path)
    try:
        model, spec, _ = build_model(meta, str(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: record does not describe a model: {exc}") from None
    state = load_file(str(path))
    check_finite_state(state, str(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or wrong:
        raise CheckpointError(
            f"{path}: weights do not fit the recorded profile (missing {missing[:3]}, "
            f"unexpected {extra[:3]}, wrong shape {wrong[:3]})"
        )
    model.load_state_dict(state)
    if not bool(model.action_norm.fitted):
        raise CheckpointError(f"{path}: the action normalizer was never fitted")
    return GeneralistPolicy(model, spec, meta, seed)


def main(argv: list[str] | None = None) -> int:
    """``python -m recipe_policy.generalist --half IN OUT``: a float16 copy of a checkpoint (to commit)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--half", action="store_true", help="store the weights as float16")
    a = p.parse_args(argv)
    try:
        pol = load_generalist(a.src)
    except CheckpointError as exc:
        print(f"generalist: error: {exc}", file=sys.stderr)
        return 1
    record = {
        k: v
        for k, v in pol.record.items()
        if k not in ("format", "profile", "spec", "has_goal", "weights_dtype")
    }
    record["converted_from"] = {"path": str(a.src), "sha256": file_sha256(a.src)}
    save_generalist(a.dst, pol.model, pol.spec, record, half=a.half)
    print(f"wrote {a.dst} ({a.dst.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
