"""config/policy.yaml: the chunk runtime's settings and the diffusion-policy profiles, validated on load.

Profiles (``paper``: the paper's architecture, GPU-sized; ``cpu``: sized for a 2-core workstation;
``tiny``: tests) may ``extends`` another and override only some keys, as config/ppo.yaml does. Every
key is checked (unknown keys are errors naming file and dotted key), because a typo in a hyperparameter
otherwise shows up hours later as a policy that does not learn.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from recipe_common import config, paths
from recipe_common.config import ConfigError
from recipe_policy.runtime import RuntimeConfig

FORMAT = "recipe_policy/policy/v1"
CONFIG_FILE = "policy.yaml"
ACTIVATIONS = ("elu", "relu", "mish", "gelu")
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear", "scaled_linear")
PREDICTION_TYPES = ("epsilon", "sample")
SAMPLERS = ("ddim", "ddpm")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")  # diffusers' DDIM timestep spacings
STATE_KEYS = ("state", "obs_state")


@dataclass(frozen=True)
class ImageConfig:
    width: int  # the policy's depth image (to_policy_image output); the vertical FOV is the head camera's
    height: int


@dataclass(frozen=True)
class EncoderConfig:
    widths: tuple[int, ...]  # ResNet-18-GN stage widths (torchvision's: 64, 128, 256, 512)
    feature_dim: int  # depth feature per observation step


@dataclass(frozen=True)
class StateMLPConfig:
    hidden_dims: tuple[int, ...]
    feature_dim: int
    activation: str


@dataclass(frozen=True)
class UNetConfig:
    down_dims: tuple[int, ...]
    kernel_size: int
    n_groups: int
    step_embed_dim: int


@dataclass(frozen=True)
class DiffusionConfig:
    train_steps: int  # DDPM steps (paper: 100)
    beta_schedule: str  # paper: square cosine
    prediction_type: str
    sampler: str  # ddim (few steps at deployment) or ddpm (all train_steps)
    inference_steps: int  # DDIM steps per predict call
    clip_sample: bool
    # Scale of the Gaussian the sampler starts each chunk from: 1 = the textbook sampler; 0 = start from the
    # prior's mean, so a DDIM chunk is a deterministic function of the observation window (low-temperature
    # sampling: the most likely mode, none of the label noise resampled). A deployment choice, like
    # inference_steps: the training is the same. Checkpoints without the key used 1.
    initial_noise_scale: float = 1.0
    # Which training timesteps a few-step DDIM visits. diffusers' default, "leading", starts 2 steps at t=50
    # ([50, 0]) from pure noise, a noise level the model was trained to see only at t=99; "trailing" starts
    # at t=99 ([99, 49]): Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed".
    # box_lift's generalist (8,000 steps): 2 leading steps 4% nominal, 2 trailing 98% (4 leading: 98%);
    # docs/distillation.md. A deployment choice; checkpoints without the key used "leading".
    timestep_spacing: str = "leading"


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int
    learning_rate: float
    weight_decay: float
    betas: tuple[float, ...]
    warmup_steps: int
    steps: int  # optimizer steps (the budget; a quiet-machine time estimate is in the YAML comments)
    ema_power: float
    ema_max_decay: float
    grad_clip: float
    checkpoint_every: int
    log_every: int
    torch_threads: int
    seed: int
    # The dataset key that feeds the state input: "state" (true values; the augmentation adds the noise) or
    # "obs_state" (what the specialist observed when it chose the action: noise and lag included, so the
    # label's reaction to that noise is predictable from the input). Checkpoints without it used "state".
    state_key: str = "state"


@dataclass(frozen=True)
class DepthAugmentation:
    """Modality-specific depth augmentation (D435-like artefacts), each per image with its probability."""

    noise_std_m: float  # Gaussian noise std at 1 m; grows with depth^2 like stereo depth error
    noise_probability: float
    hole_probability: float  # blobs of missing depth (filled with far_m, as to_policy_image does)
    max_holes: int
    erase_probability: float  # one random rectangle erased (occlusion)
    edge_probability: float  # flying pixels at depth edges dropped to far_m
    shift_px: int  # random translation up to this many pixels (camera mounting error)
    shift_probability: float


@dataclass(frozen=True)
class StateAugmentation:
    object_pos_noise_m: float  # paper Table IV: 0.02; what perception's centroid error looks like
    joint_pos_noise_rad: float


@dataclass(frozen=True)
class AugmentationConfig:
    depth: DepthAugmentation
    state: StateAugmentation


@dataclass(frozen=True)
class PolicyProfile:
    """One resolved profile of config/policy.yaml."""

    name: str
    n_obs_steps: int
    horizon: int  # actions predicted per chunk, from the oldest observation step on
    action_horizon: int  # actions returned per predict call, from the newest observation on
    action_dt: float
    inference_period: float
    use_depth: bool
    use_object_pos: bool
    image: ImageConfig
    encoder: EncoderConfig
    state_mlp: StateMLPConfig
    unet: UNetConfig
    diffusion: DiffusionConfig
    training: TrainingConfig
    augmentation: AugmentationConfig

    def __post_init__(self) -> None:
        if self.n_obs_steps - 1 + self.action_horizon > self.horizon:
            raise ConfigError(
                f"profiles.{self.name}: n_obs_steps - 1 + action_horizon "
                f"({self.n_obs_steps - 1 + self.action_horizon}) exceeds horizon {self.horizon}"
            )
        multiple = 2 ** (len(self.unet.down_dims) - 1)
        if self.horizon % multiple:
            raise ConfigError(
                f"profiles.{self.name}.horizon: {self.horizon} must be a multiple of {multiple} "
                f"(the UNet halves it {len(self.unet.down_dims) - 1} times)"
            )
        if not (self.use_depth or self.use_object_pos):
            raise ConfigError(f"profiles.{self.name}: use_depth and use_object_pos cannot both be false")

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def with_changes(self, **changes: Any) -> PolicyProfile:
        """A copy with (dotted, possibly nested) keys replaced, re-validated: ``{"training.steps": 10}``."""
        data = self.to_dict()
        for key, value in changes.items():
            node = data
            parts = key.split(".")
            for p in parts[:-1]:
                node = node[p]
            if parts[-1] not in node:
                raise ConfigError(f"profile has no key {key!r}")
            node[parts[-1]] = value
        name = data.pop("name")
        return profile_from_dict(data, name)


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _convert(tp: Any, value: Any, where: str) -> Any:
    if is_dataclass(tp):
        return _build(tp, value, where)
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item, _) = typing.get_args(tp)
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(f"{where} must be a non-empty list, got {value!r}")
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"{where}: union fields are not supported")
    if tp is bool:
        return config.as_bool(value, where)
    if tp is int:
        return config.as_int(value, where, minimum=0)
    if tp is float:
        return config.as_float(value, where, nonnegative=True)
    if tp is str:
        return config.as_str(value, where, nonempty=True)
    raise TypeError(f"{where}: unsupported field type {tp!r}")


_CHOICES = {
    "state_mlp.activation": ACTIVATIONS,
    "diffusion.beta_schedule": BETA_SCHEDULES,
    "diffusion.prediction_type": PREDICTION_TYPES,
    "diffusion.sampler": SAMPLERS,
    "diffusion.timestep_spacing": TIMESTEP_SPACINGS,
    "training.state_key": STATE_KEYS,
}
_POSITIVE = {
    "n_obs_steps",
    "horizon",
    "action_horizon",
    "action_dt",
    "inference_period",
    "image.width",
    "image.height",
    "encoder.feature_dim",
    "state_mlp.feature_dim",
    "unet.kernel_size",
    "unet.n_groups",
    "unet.step_embed_dim",
    "diffusion.train_steps",
    "diffusion.inference_steps",
    "training.batch_size",
    "training.learning_rate",
    "training.steps",
    "training.checkpoint_every",
    "training.log_every",
    "training.torch_threads",
}
_UNIT = {"training.ema_power", "training.ema_max_decay", "diffusion.initial_noise_scale"} | {
    f"augmentation.depth.{k}"
    for k in (
        "noise_probability",
        "hole_probability",
        "erase_probability",
        "edge_probability",
        "shift_probability",
    )
}


def _build(cls: type, data: Any, where: str, **extra: Any) -> Any:
    hints = typing.get_type_hints(cls)
    own = [f for f in fields(cls) if f.name != "name"]
    defaults = {f.name: config.field_default(f) for f in own if config.has_default(f)}
    names = [f.name for f in own]
    config.require_keys(data, where, [n for n in names if n not in defaults], list(defaults))
    kw = {}
    for n in names:
        key = f"{where}.{n}"
        value = _convert(hints[n], data[n], key) if n in data else defaults[n]
        rel = key.split(".", 2)[-1] if key.startswith("profiles.") else key
        if rel in _CHOICES:
            config.as_str(value, key, _CHOICES[rel])
        if rel in _POSITIVE and (value <= 0):
            raise ConfigError(f"{key} must be > 0, got {value}")
        if rel in _UNIT and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key} must be in [0, 1], got {value}")
        kw[n] = value
    return cls(**kw, **extra)


def profile_from_dict(data: Mapping[str, Any], name: str) -> PolicyProfile:
    """Validate one resolved profile (no ``extends``); errors name ``profiles.<name>.<key>``."""
    where = f"profiles.{name}"
    config.mapping(data, where)
    return _build(PolicyProfile, data, where, name=name)


def _load_raw(path: str | Path | None) -> tuple[Path, dict[str, Any]]:
    path = paths.config_path(CONFIG_FILE) if path is None else Path(path)
    data = config.load_yaml(path, FORMAT)
    try:
        config.check_keys(data, ["format", "runtime", "profiles"], "policy.yaml", ["runtime", "profiles"])
    except ConfigError as exc:
        raise config.in_file(path, exc) from None
    return path, data


def load_profile(name: str, path: str | Path | None = None) -> PolicyProfile:
    """A resolved, validated profile of config/policy.yaml (or ``path``)."""
    path, data = _load_raw(path)
    try:
        profiles = config.mapping(data["profiles"], "profiles")
        return profile_from_dict(config.resolve_profile(profiles, name), name)
    except ConfigError as exc:
        raise config.in_file(path, exc) from None


def profile_names(path: str | Path | None = None) -> list[str]:
    return sorted(_load_raw(path)[1]["profiles"])


def runtime_from_dict(data: Any, where: str = "runtime") -> RuntimeConfig:
    allowed = [f.name for f in fields(RuntimeConfig)]
    config.check_keys(data, allowed, where, allowed)
    try:
        return RuntimeConfig(
            ensemble_decay=config.as_float(data["ensemble_decay"], f"{where}.ensemble_decay", -10.0, 10.0),
            reanchor_fade_s=config.as_float(
                data["reanchor_fade_s"], f"{where}.reanchor_fade_s", nonnegative=True
            ),
            max_observation_age_s=config.as_float(
                data["max_observation_age_s"], f"{where}.max_observation_age_s", positive=True
            ),
            max_chunk_age_s=config.as_float(
                data["max_chunk_age_s"], f"{where}.max_chunk_age_s", positive=True
            ),
            interpolate=config.as_bool(data["interpolate"], f"{where}.interpolate"),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_runtime_config(path: str | Path | None = None, **overrides: Any) -> RuntimeConfig:
    """``runtime:`` of config/policy.yaml: ensemble weights, re-anchoring fade, staleness limits.
    ``overrides`` replace keys of the file's section (to compare settings) and are validated the same way."""
    path, data = _load_raw(path)
    try:
        return runtime_from_dict({**(data["runtime"] or {}), **overrides})
    except ConfigError as exc:
        raise config.in_file(path, exc) from None
