"""PPO hyperparameters from config/ppo.yaml: validated profiles that become an rsl-rl-lib train config.

The YAML holds named profiles (``default`` for a CPU workstation, ``tiny`` for tests). A profile may
``extends`` another and override only what differs, so the tiny test config cannot silently drift from
the default in the keys it does not mention. Every key is checked on load and errors name the dotted
path of the bad key, because a typo in a hyperparameter otherwise shows up hours later as a policy
that does not learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recipe_common import config, paths
from recipe_common.config import ConfigError

FORMAT = "recipe_sim/ppo/v1"
CONFIG_FILE = "ppo.yaml"
ACTIVATIONS = ("elu", "selu", "relu", "lrelu", "tanh", "gelu", "swish", "mish")
SCHEDULES = ("adaptive", "fixed")
OPTIMIZERS = ("adam", "adamw")
STD_TYPES = ("scalar", "log")
OBS_SETS = ("actor", "critic")
ACTION_OFFSETS = ("ready_pose", "zero")


@dataclass(frozen=True)
class ActionHead:
    """Fixed output stage of the actor: action = offset + scale * MLP output (see ppo/action_head.py)."""

    offset: str  # ready_pose | zero
    arm_scale: float  # rad per unit of MLP output
    hand_scale: float  # normalized hand units per unit of MLP output
    output_gain: float  # initial weight scale of the MLP's last layer (mean action starts at offset)


@dataclass(frozen=True)
class ModelConfig:
    """One MLP (actor or critic). ``init_std``/``std_type`` only apply to the stochastic actor."""

    hidden_dims: tuple[int, ...]
    activation: str
    obs_normalization: bool
    init_std: float | None = None
    std_type: str = "scalar"
    arm_init_std: float | None = None  # actor only: initial std of the 14 arm entries (None = init_std)


@dataclass(frozen=True)
class AlgorithmConfig:
    learning_rate: float
    num_learning_epochs: int
    num_mini_batches: int
    clip_param: float
    gamma: float
    lam: float
    value_loss_coef: float
    entropy_coef: float
    max_grad_norm: float
    schedule: str
    desired_kl: float
    use_clipped_value_loss: bool
    normalize_advantage_per_mini_batch: bool
    optimizer: str


@dataclass(frozen=True)
class DemoInitConfig:
    """Demo-initialised PPO (``train --demo-init``, ppo/demo_init.py): clone a scripted expert, then PPO."""

    episodes: int  # successful scripted episodes to clone
    max_rounds: int  # give up after this many rounds of num_envs scripted episodes
    epochs: int  # behaviour-cloning passes over the demonstrations
    batch_size: int
    learning_rate: float
    arm_std: float  # exploration std of the 14 arm entries after cloning (rad)
    hand_std: float  # and of the 12 hand entries (normalized)
    critic_warmup_iterations: int  # PPO iterations with the actor frozen while the critic learns its values
    ppo_learning_rate: float  # replaces algorithm.learning_rate: fine-tuning a clone needs smaller steps
    dagger_rounds: int = 0  # rounds of DAgger after cloning (the clone drives, the expert relabels)
    dagger_epochs: int = 8  # passes over all pairs so far after each round (from the current weights)
    # Keep the actor's observation normalizer at the clone's statistics during PPO (rsl-rl updates it from
    # every rollout, which moves a cloned policy that the optimizer is not moving; see training.clone_into).
    freeze_obs_normalizer: bool = True
    # Options of the task's expert (``make_expert(env, **expert)``), e.g. ``{memoryless: true}`` for handover.
    expert: Mapping[str, Any] = field(default_factory=dict)
    # The cloning learning rate over the epochs: ``constant`` or ``cosine`` (decays to 0 by the last batch,
    # so the last epochs settle into a minimum instead of hopping around it at full step size).
    lr_schedule: str = "constant"


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class PPOConfig:
    """A resolved profile. ``num_envs``/``iterations`` are defaults the train CLI may override."""

    profile: str
    num_envs: int
    iterations: int
    num_steps_per_env: int
    save_interval: int
    env_threads: int
    torch_threads: int
    init_at_random_ep_len: bool
    obs_groups: dict[str, tuple[str, ...]]
    action_head: ActionHead
    actor: ModelConfig
    critic: ModelConfig
    algorithm: AlgorithmConfig
    demo_init: DemoInitConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form in the YAML layout (plus ``profile``), for metadata.json and reloading."""
        data = _plain(asdict(self))
        for key in ("init_std", "std_type", "arm_init_std"):
            data["critic"].pop(key)
        if data["actor"]["arm_init_std"] is None:
            data["actor"].pop("arm_init_std")
        if data["demo_init"] is None:
            data.pop("demo_init")
        return data

    def with_overrides(self, **changes: Any) -> PPOConfig:
        """A copy with top-level fields replaced (CLI flags; None = keep), re-validated."""
        data = self.to_dict()
        profile = data.pop("profile")
        data.update({k: v for k, v in changes.items() if v is not None})
        return config_from_dict(data, profile)

    def to_rsl_rl(self) -> dict[str, Any]:
        """The ``train_cfg`` dict that rsl_rl's OnPolicyRunner expects (rsl-rl-lib 5.x layout)."""
        actor = self.actor
        return {
            "num_steps_per_env": self.num_steps_per_env,
            "save_interval": self.save_interval,
            "obs_groups": {k: list(v) for k, v in self.obs_groups.items()},
            "logger": "tensorboard",
            "check_for_nan": True,
            "algorithm": {"class_name": "PPO", **asdict(self.algorithm)},
            "actor": {
                "class_name": "MLPModel",
                "hidden_dims": list(actor.hidden_dims),
                "activation": actor.activation,
                "obs_normalization": actor.obs_normalization,
                "distribution_cfg": {
                    "class_name": "GaussianDistribution",
                    "init_std": actor.init_std,
                    "std_type": actor.std_type,
                },
            },
            "critic": {
                "class_name": "MLPModel",
                "hidden_dims": list(self.critic.hidden_dims),
                "activation": self.critic.activation,
                "obs_normalization": self.critic.obs_normalization,
            },
        }


def default_config_path() -> Path:
    return paths.config_dir() / CONFIG_FILE


def load_config(path: str | Path | None = None, profile: str = "default") -> PPOConfig:
    """Read ``path`` (default config/ppo.yaml) and resolve ``profile``; errors name file and key."""
    path = Path(path) if path is not None else default_config_path()
    data = config.load_yaml(path)
    try:
        return config_from_file_dict(data, profile)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_from_file_dict(data: Mapping[str, Any], profile: str) -> PPOConfig:
    config.require_keys(dict(data), "ppo", {"format", "profiles"})
    if data["format"] != FORMAT:
        raise ConfigError(f"format: expected {FORMAT!r}, got {data['format']!r}")
    profiles = data["profiles"]
    if not isinstance(profiles, Mapping) or not profiles:
        raise ConfigError("profiles: expected a non-empty mapping of name -> profile")
    return config_from_dict(config.resolve_profile(profiles, profile), profile)


_TOP_KEYS = {
    "num_envs",
    "iterations",
    "num_steps_per_env",
    "save_interval",
    "env_threads",
    "torch_threads",
    "init_at_random_ep_len",
    "obs_groups",
    "action_head",
    "actor",
    "critic",
    "algorithm",
}


def config_from_dict(data: Mapping[str, Any], profile: str = "default") -> PPOConfig:
    """Validate one resolved profile (no ``extends``)."""
    where = f"profiles.{profile}"
    config.require_keys(dict(data), where, _TOP_KEYS, {"demo_init"})
    cfg = PPOConfig(
        profile=profile,
        num_envs=config.as_int(data["num_envs"], f"{where}.num_envs", minimum=1),
        iterations=config.as_int(data["iterations"], f"{where}.iterations", minimum=1),
        num_steps_per_env=config.as_int(data["num_steps_per_env"], f"{where}.num_steps_per_env", minimum=1),
        save_interval=config.as_int(data["save_interval"], f"{where}.save_interval", minimum=1),
        env_threads=config.as_int(data["env_threads"], f"{where}.env_threads", minimum=1),
        torch_threads=config.as_int(data["torch_threads"], f"{where}.torch_threads", minimum=1),
        init_at_random_ep_len=_as_bool(data["init_at_random_ep_len"], f"{where}.init_at_random_ep_len"),
        obs_groups=_obs_groups(data["obs_groups"], f"{where}.obs_groups"),
        action_head=_action_head(data["action_head"], f"{where}.action_head"),
        actor=_model(data["actor"], f"{where}.actor", stochastic=True),
        critic=_model(data["critic"], f"{where}.critic", stochastic=False),
        algorithm=_algorithm(data["algorithm"], f"{where}.algorithm"),
        demo_init=None
        if data.get("demo_init") is None
        else _demo_init(data["demo_init"], f"{where}.demo_init"),
    )
    batch = cfg.num_envs * cfg.num_steps_per_env
    if batch < cfg.algorithm.num_mini_batches:
        raise ConfigError(
            f"{where}.algorithm.num_mini_batches: {cfg.algorithm.num_mini_batches} mini-batches "
            f"exceed the {batch} samples per iteration (num_envs x num_steps_per_env)"
        )
    return cfg


def _obs_groups(raw: Any, where: str) -> dict[str, tuple[str, ...]]:
    config.require_keys(raw, where, set(OBS_SETS))
    out: dict[str, tuple[str, ...]] = {}
    for key in OBS_SETS:
        groups = raw[key]
        if not isinstance(groups, list) or not groups or not all(isinstance(g, str) and g for g in groups):
            raise ConfigError(
                f"{where}.{key}: expected a non-empty list of observation group names, got {groups!r}"
            )
        out[key] = tuple(groups)
    if "policy" not in out["actor"]:
        raise ConfigError(f"{where}.actor: must include 'policy' (the deployable observation group)")
    return out


def _action_head(raw: Any, where: str) -> ActionHead:
    config.require_keys(raw, where, {"offset", "arm_scale", "hand_scale", "output_gain"})
    return ActionHead(
        _choice(raw["offset"], f"{where}.offset", ACTION_OFFSETS),
        *(
            config.as_float(raw[k], f"{where}.{k}", positive=True)
            for k in ("arm_scale", "hand_scale", "output_gain")
        ),
    )


def _model(raw: Any, where: str, stochastic: bool) -> ModelConfig:
    optional = {"init_std", "std_type", "arm_init_std"} if stochastic else set()
    required = {"hidden_dims", "activation", "obs_normalization"} | ({"init_std"} if stochastic else set())
    config.require_keys(raw, where, required, optional)
    dims = raw["hidden_dims"]
    if not isinstance(dims, list) or not dims:
        raise ConfigError(f"{where}.hidden_dims: expected a non-empty list of layer widths, got {dims!r}")
    hidden = tuple(config.as_int(d, f"{where}.hidden_dims[{i}]", minimum=1) for i, d in enumerate(dims))
    activation = _choice(raw["activation"], f"{where}.activation", ACTIVATIONS)
    init_std = config.as_float(raw["init_std"], f"{where}.init_std", positive=True) if stochastic else None
    std_type = _choice(raw.get("std_type", "scalar"), f"{where}.std_type", STD_TYPES)
    arm_std = raw.get("arm_init_std")
    arm_init_std = None
    if stochastic and arm_std is not None:
        arm_init_std = config.as_float(arm_std, f"{where}.arm_init_std", positive=True)
    return ModelConfig(
        hidden,
        activation,
        _as_bool(raw["obs_normalization"], f"{where}.obs_normalization"),
        init_std,
        std_type,
        arm_init_std,
    )


_ALG_FLOATS = {  # key -> (low, high, low exclusive)
    "learning_rate": (0.0, 1.0, True),
    "clip_param": (0.0, 1.0, True),
    "gamma": (0.0, 1.0, False),
    "lam": (0.0, 1.0, False),
    "value_loss_coef": (0.0, math.inf, False),
    "entropy_coef": (0.0, math.inf, False),
    "max_grad_norm": (0.0, math.inf, True),
    "desired_kl": (0.0, math.inf, True),
}


def _algorithm(raw: Any, where: str) -> AlgorithmConfig:
    keys = set(_ALG_FLOATS) | {
        "num_learning_epochs",
        "num_mini_batches",
        "schedule",
        "use_clipped_value_loss",
        "normalize_advantage_per_mini_batch",
        "optimizer",
    }
    config.require_keys(raw, where, keys)
    values: dict[str, Any] = {}
    for key, (lo, hi, exclusive) in _ALG_FLOATS.items():
        v = config.as_float(raw[key], f"{where}.{key}")
        if v < lo or (exclusive and v == lo) or v > hi:
            bound = f"{'(' if exclusive else '['}{lo}, {hi}]"
            raise ConfigError(f"{where}.{key}: must be in {bound}, got {v}")
        values[key] = v
    values["num_learning_epochs"] = config.as_int(
        raw["num_learning_epochs"], f"{where}.num_learning_epochs", minimum=1
    )
    values["num_mini_batches"] = config.as_int(
        raw["num_mini_batches"], f"{where}.num_mini_batches", minimum=1
    )
    values["schedule"] = _choice(raw["schedule"], f"{where}.schedule", SCHEDULES)
    values["optimizer"] = _choice(raw["optimizer"], f"{where}.optimizer", OPTIMIZERS)
    for key in ("use_clipped_value_loss", "normalize_advantage_per_mini_batch"):
        values[key] = _as_bool(raw[key], f"{where}.{key}")
    return AlgorithmConfig(**values)


def _demo_init(raw: Any, where: str) -> DemoInitConfig:
    ints = ("episodes", "max_rounds", "epochs", "batch_size")
    floats = ("learning_rate", "arm_std", "hand_std", "ppo_learning_rate")
    config.require_keys(
        raw, where, {*ints, *floats, "critic_warmup_iterations"},
        {"dagger_rounds", "dagger_epochs", "freeze_obs_normalizer", "expert", "lr_schedule"},
    )
    expert = raw.get("expert", {}) or {}
    if not isinstance(expert, dict):
        raise ConfigError(f"{where}.expert: expected a mapping of the expert's options, got {expert!r}")
    return DemoInitConfig(
        **{k: config.as_int(raw[k], f"{where}.{k}", minimum=1) for k in ints},
        **{k: config.as_float(raw[k], f"{where}.{k}", positive=True) for k in floats},
        critic_warmup_iterations=config.as_int(
            raw["critic_warmup_iterations"], f"{where}.critic_warmup_iterations", minimum=0
        ),
        dagger_rounds=config.as_int(raw.get("dagger_rounds", 0), f"{where}.dagger_rounds", minimum=0),
        dagger_epochs=config.as_int(raw.get("dagger_epochs", 8), f"{where}.dagger_epochs", minimum=1),
        freeze_obs_normalizer=_as_bool(
            raw.get("freeze_obs_normalizer", True), f"{where}.freeze_obs_normalizer"
        ),
        expert=dict(expert),
        lr_schedule=_choice(raw.get("lr_schedule", "constant"), f"{where}.lr_schedule", LR_SCHEDULES),
    )


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
    return str(value)


def _as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
