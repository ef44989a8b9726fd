"""Domain randomization (paper Table IV): validated config, seeded per-episode sampler, per-step noise.

Everything is numpy and driven by an explicit ``np.random.Generator`` so that a seed reproduces a
training run and the env (MuJoCo, numpy state) applies the values without tensor round trips.

Per-episode items are drawn by ``sample_episode`` at reset; per-step items are small stateful
helpers the env owns (``ObjectForce``, ``LagBuffer``) or pure functions (``apply_obs_noise``,
``apply_action_noise``). A disabled item is the identity: scale 1, offset 0, absolute values at
their ``nominal``, no noise, no lag, zero force.

Interpretations of Table IV (the paper gives only the numbers):
  * object mass/friction and hand friction are absolute values; a catalog object's own
    ``mass_range``/``friction_range`` may replace the table's range for that object.
  * initial position noise is added to x and y only (a z offset would start the object inside or
    above the table).
  * observation and action noise are zero-mean Gaussians with the given standard deviation, drawn
    every policy step. ``joint_obs_noise`` keeps the paper's 0.4, which as radians (23 degrees) is
    far above GR1 encoder error; it is only plausible if the paper meant degrees or normalised
    units. It is kept as published and flagged here; lower it in the YAML if training suffers.
  * camera position/rotation/FOV noise are per-episode uniform offsets within +-value (per axis
    for position and roll/pitch/yaw rotation): a mis-calibrated camera stays mis-calibrated.
  * lag: with probability p an env gets its previous frame/action again (a one-step delay).

Per-step helpers do not reject NaN input (a diverged env must not stop the other N-1); the env
detects those with ``success.nonfinite_state`` and resets them. Config values are checked strictly:
unknown keys, and every value against the physically meaningful range of its item (``BOUNDS``; a
negative gain or friction would reach MuJoCo otherwise). Errors are ``ConfigError``s naming the file,
the dotted key and the allowed range.

The object mass and friction *ranges* are per object and live in config/objects.yaml (its
``defaults`` and each object's ``mass_range``/``friction_range``: a 200 g box and a 65 g can need
different ones), and the env always draws from those. Here ``object_mass`` and ``object_friction``
only switch that randomization on or off; a ``range`` or ``nominal`` other than the paper's would
have no effect, so it is refused with a message saying where to set it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common.config import (
    Bounds,
    ConfigError,
    as_bool,
    as_float,
    as_range,
    check_keys,
    in_file,
    load_yaml,
)
from recipe_common.paths import config_path

FORMAT = "recipe_sim/randomization/v1"
CONFIG_FILE = "randomization.yaml"
# Items that change only the rendered depth image: no effect on a state-based policy or a script.
CAMERA_ITEMS = ("camera_pos_noise", "camera_rot_noise_deg", "camera_fov_noise_deg")

# Columns of scales_vector(): what the privileged critic sees (paper: mass/friction/shape scales,
# plus the PD gain scales, which shape the dynamics just as much).
PRIVILEGED_KEYS: tuple[str, ...] = (
    "object_mass", "object_friction", "object_scale", "hand_friction", "kp_scale", "kd_scale",
)

# --------------------------------------------------------------------------- config items


@dataclass(frozen=True)
class RangeItem:
    """A value drawn U(range) per episode; ``nominal`` is used when disabled (1 for scales, 0 for
    offsets, the unrandomized value for absolute quantities)."""

    enabled: bool
    range: tuple[float, float]
    nominal: float


@dataclass(frozen=True)
class NoiseItem:
    """Zero-mean Gaussian noise with standard deviation ``std``, added every policy step.

    With ``std_min`` each env draws its standard deviation per episode from U(std_min, std): one
    policy trained across noise levels, e.g. from Table IV read as degrees up to the low-noise profile.
    A PPO fine-tune on one level alone learnt to rely on that level (box_lift, docs/specialists.md).
    """

    enabled: bool
    std: float
    std_min: float | None = None


@dataclass(frozen=True)
class LagItem:
    """With ``probability`` per env and step, deliver the previous frame/action again."""

    enabled: bool
    probability: float


@dataclass(frozen=True)
class ForceItem:
    """Random push on the object: every ``interval_s`` with ``probability`` a new force of
    magnitude ``scale * mass`` (N, i.e. ``scale`` m/s^2 of acceleration) in a random direction;
    the force decays by ``decay`` per ``interval_s``.

    ``min_lift`` (m, not in Table IV): the force acts only while the object's centre is at least this far
    above its rest height; 0 (the default) = always. Table IV does not say whether the force acts on an
    object resting on the table. Objects that stand on a face do not move under it (friction 0.5-1.5
    against 0.2 g), but it rolls a ball away before any hand reaches it, yet the paper trains spheres; a
    small ``min_lift`` is the reading under which it tests the grasp and not the approach.
    """

    enabled: bool
    scale: float
    probability: float
    decay: float
    interval_s: float
    min_lift: float = 0.0


# The physically meaningful values of each range item (scales and frictions must stay positive, offsets
# small enough to keep the object reachable and the camera looking at the table).
BOUNDS: dict[str, Bounds] = {
    "object_mass": Bounds(0.0, 20.0, False, "kg"),
    "object_friction": Bounds(0.0, 5.0, False),
    "object_scale": Bounds(0.0, 3.0, False, "(x geom size)"),
    "object_init_pos": Bounds(-0.1, 0.1, closed_low=True, unit="m"),
    "object_init_yaw": Bounds(-math.pi, math.pi, closed_low=True, unit="rad"),
    "hand_friction": Bounds(0.0, 5.0, False),
    "kp_scale": Bounds(0.0, 5.0, False, "(x PD P gain)"),
    "kd_scale": Bounds(0.0, 5.0, False, "(x PD D gain)"),
    "camera_pos_noise": Bounds(-0.1, 0.1, closed_low=True, unit="m"),
    "camera_rot_noise_deg": Bounds(-30.0, 30.0, closed_low=True, unit="deg"),
    "camera_fov_noise_deg": Bounds(-30.0, 30.0, closed_low=True, unit="deg"),
}
NOISE_MAX: dict[str, float] = {"object_pos_obs_noise": 0.2, "joint_obs_noise": 1.0, "action_noise": 1.0}
NOISE_ITEMS = tuple(NOISE_MAX)  # the per-step Gaussian items (NoiseItem)
FORCE_SCALE_MAX = 50.0  # m/s^2 of acceleration from a push
CATALOG_ITEMS = {"object_mass": "mass_range", "object_friction": "friction_range"}


def _parse_item(cls: type, data: Any, default: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    names = [f.name for f in fields(cls)]
    check_keys(data, names, where)
    kw = asdict(default)
    bounds = BOUNDS.get(where)
    for key, value in data.items():
        name = f"{where}.{key}"
        if key == "enabled":
            kw[key] = as_bool(value, name)
        elif key == "range":
            low, high = as_range(value, name)
            if bounds is not None:
                bounds.check(low, f"{name}[0]")
                bounds.check(high, f"{name}[1]")
            kw[key] = (low, high)
        elif key in ("probability", "decay"):
            kw[key] = as_float(value, name, 0.0, 1.0)
        elif key == "std":
            kw[key] = as_float(value, name, 0.0, NOISE_MAX.get(where))
        elif key == "std_min":
            kw[key] = None if value is None else as_float(value, name, 0.0, NOISE_MAX.get(where))
        elif key == "scale":
            kw[key] = as_float(value, name, 0.0, FORCE_SCALE_MAX)
        elif key == "interval_s":
            kw[key] = as_float(value, name, 0.0, 10.0, exclusive=True)
        elif key == "min_lift":
            kw[key] = as_float(value, name, 0.0, 0.5)
        else:
            kw[key] = as_float(value, name)
            if key == "nominal" and bounds is not None:
                bounds.check(kw[key], name)
    if kw.get("std_min") is not None and kw["std_min"] > kw["std"]:
        raise ConfigError(f"{where}.std_min: {kw['std_min']} must be <= {where}.std ({kw['std']}): the "
                          f"per-episode standard deviation is drawn from U(std_min, std)")
    if where in CATALOG_ITEMS:
        for key in ("range", "nominal"):
            if key in data and kw[key] != getattr(default, key):
                per_object, what = CATALOG_ITEMS[where], where.split("_")[1]
                raise ConfigError(
                    f"{where}.{key}: {data[key]!r} would have no effect: every object's {what} "
                    f"range comes from config/objects.yaml (defaults.{per_object}, or objects.<name>."
                    f"{per_object}); set it there. Here {where} only switches the randomization on or off "
                    f"(leave {key} out, or at the paper's {getattr(default, key)!r})")
    return cls(**kw)


@dataclass(frozen=True)
class RandomizationConfig:
    """Table IV, one field per item; the defaults are the paper's values."""

    object_mass: RangeItem = RangeItem(True, (0.03, 0.1), 0.065)  # kg
    object_friction: RangeItem = RangeItem(True, (0.5, 1.5), 1.0)  # sliding friction coefficient
    object_scale: RangeItem = RangeItem(True, (0.95, 1.05), 1.0)  # multiplies the geom size
    object_init_pos: RangeItem = RangeItem(True, (-0.02, 0.02), 0.0)  # m, added to x and y
    object_init_yaw: RangeItem = RangeItem(True, (-0.75, 0.75), 0.0)  # rad, about world z
    hand_friction: RangeItem = RangeItem(True, (0.5, 1.5), 1.0)
    kp_scale: RangeItem = RangeItem(True, (0.8, 1.1), 1.0)
    kd_scale: RangeItem = RangeItem(True, (0.7, 1.2), 1.0)
    object_force: ForceItem = ForceItem(True, 2.0, 0.2, 0.99, 0.1)
    object_pos_obs_noise: NoiseItem = NoiseItem(True, 0.02)  # m
    joint_obs_noise: NoiseItem = NoiseItem(True, 0.4)  # paper value; see module docstring
    action_noise: NoiseItem = NoiseItem(True, 0.1)
    frame_lag: LagItem = LagItem(True, 0.1)
    action_lag: LagItem = LagItem(True, 0.1)
    camera_pos_noise: RangeItem = RangeItem(True, (-0.005, 0.005), 0.0)  # m per axis
    camera_rot_noise_deg: RangeItem = RangeItem(True, (-5.0, 5.0), 0.0)  # deg per axis
    camera_fov_noise_deg: RangeItem = RangeItem(True, (-5.0, 5.0), 0.0)  # deg

    @classmethod
    def load(cls, path: str | Path | None = None) -> RandomizationConfig:
        """Load config/randomization.yaml (or ``path``); items or fields left out keep the defaults."""
        path = config_path(CONFIG_FILE) if path is None else Path(path)
        data = load_yaml(path, FORMAT)
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise in_file(path, exc) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RandomizationConfig:
        """Items from a mapping (what to_dict writes: an optional ``format`` key must match)."""
        defaults = cls()
        if "format" in data:
            if data["format"] != FORMAT:
                raise ConfigError(f"randomization: format {data['format']!r} is not {FORMAT!r}")
            data = {k: v for k, v in data.items() if k != "format"}
        check_keys(data, [f.name for f in fields(cls)], "randomization")
        kw = {}
        for key, value in data.items():
            default = getattr(defaults, key)
            kw[key] = _parse_item(type(default), value, default, key)
        return replace(defaults, **kw)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        for f in fields(self):
            item = asdict(getattr(self, f.name))
            if item.get("std_min", 0.0) is None:
                del item["std_min"]  # a single noise level, written as before std_min existed
            if item.get("min_lift", 1.0) == 0.0:
                del item["min_lift"]  # a force that always acts, written as before min_lift existed
            if "range" in item:
                item["range"] = list(item["range"])
            out[f.name] = item
        return out

    @classmethod
    def disabled(cls) -> RandomizationConfig:
        """Every item off: the nominal simulator (for evaluation and debugging)."""
        base = cls()
        return replace(base, **{f.name: replace(getattr(base, f.name), enabled=False) for f in fields(base)})

    def item_names(self) -> list[str]:
        return [f.name for f in fields(self)]

    def enabled_items(self) -> list[str]:
        return [name for name in self.item_names() if getattr(self, name).enabled]

    def without(self, name: str) -> RandomizationConfig:
        """This profile with item ``name`` off: one row of a leave-one-out ablation (what it costs)."""
        if name not in self.item_names():
            raise ValueError(f"randomization has no item {name!r}; items: {self.item_names()}")
        return replace(self, **{name: replace(getattr(self, name), enabled=False)})


# --------------------------------------------------------------------------- per-episode sampling


def _check_n_envs(n_envs: int) -> int:
    if isinstance(n_envs, bool) or not isinstance(n_envs, int | np.integer) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    return int(n_envs)


def _draw(item: RangeItem, rng: np.random.Generator, shape: tuple[int, ...],
          override: tuple[float, float] | None = None) -> np.ndarray:
    """Always consume the same random numbers, so toggling one item leaves the others' draws alone."""
    low, high = item.range if override is None else override
    values = rng.uniform(low, high, size=shape)
    return values if item.enabled else np.full(shape, item.nominal)


def sample_episode(cfg: RandomizationConfig, rng: np.random.Generator, n_envs: int,
                   mass_range: tuple[float, float] | None = None,
                   friction_range: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Per-env episode values, drawn at reset.

    Keys and shapes: object_mass, object_friction, object_scale, object_init_yaw, hand_friction,
    kp_scale, kd_scale, camera_fov_offset_deg (N,); object_init_pos_offset (N, 3) with z = 0,
    camera_pos_offset, camera_rot_offset_deg (N, 3). ``mass_range``/``friction_range`` replace the
    table's ranges for one catalog object (only while the item is enabled).
    """
    n = _check_n_envs(n_envs)
    if mass_range is not None:
        mass_range = as_range(mass_range, "mass_range")
    if friction_range is not None:
        friction_range = as_range(friction_range, "friction_range")
    pos = _draw(cfg.object_init_pos, rng, (n, 3))
    pos[:, 2] = 0.0
    return {
        "object_mass": _draw(cfg.object_mass, rng, (n,), mass_range),
        "object_friction": _draw(cfg.object_friction, rng, (n,), friction_range),
        "object_scale": _draw(cfg.object_scale, rng, (n,)),
        "object_init_pos_offset": pos,
        "object_init_yaw": _draw(cfg.object_init_yaw, rng, (n,)),
        "hand_friction": _draw(cfg.hand_friction, rng, (n,)),
        "kp_scale": _draw(cfg.kp_scale, rng, (n,)),
        "kd_scale": _draw(cfg.kd_scale, rng, (n,)),
        "camera_pos_offset": _draw(cfg.camera_pos_noise, rng, (n, 3)),
        "camera_rot_offset_deg": _draw(cfg.camera_rot_noise_deg, rng, (n, 3)),
        "camera_fov_offset_deg": _draw(cfg.camera_fov_noise_deg, rng, (n,)),
    }


def scales_vector(sample: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, len(PRIVILEGED_KEYS)) float32 block of the privileged critic observation."""
    missing = [k for k in PRIVILEGED_KEYS if k not in sample]
    if missing:
        raise ValueError(f"sample lacks privileged keys {missing}")
    cols = [np.asarray(sample[k], dtype=np.float32) for k in PRIVILEGED_KEYS]
    n = cols[0].shape[0] if cols[0].ndim == 1 else -1
    for key, col in zip(PRIVILEGED_KEYS, cols):
        if col.shape != (n,):
            raise ValueError(f"sample[{key!r}] must have shape ({n},), got {col.shape}")
    return np.stack(cols, axis=-1)


# --------------------------------------------------------------------------- per-step noise


def episode_noise_std(item: NoiseItem, rng: np.random.Generator, n_envs: int) -> np.ndarray:
    """(N,) per-env standard deviation for new episodes: U(std_min, std), or ``std`` without std_min.

    ``rng`` is consumed only with std_min, so a single-level profile's draws are unchanged."""
    n = _check_n_envs(n_envs)
    if item.std_min is None:
        return np.full(n, item.std)
    return rng.uniform(item.std_min, item.std, size=n)


def _add_gaussian(x: np.ndarray, item: NoiseItem, rng: np.random.Generator,
                  std: np.ndarray | None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not item.enabled or item.std == 0.0:
        return arr.copy()
    if std is None:
        return arr + rng.normal(0.0, item.std, size=arr.shape)
    per_env = np.asarray(std, dtype=np.float64)
    if per_env.shape != arr.shape[:1]:
        raise ValueError(f"per-env noise std must have shape {arr.shape[:1]}, got {per_env.shape}")
    return arr + rng.normal(0.0, per_env.reshape(-1, *([1] * (arr.ndim - 1))), size=arr.shape)


def apply_obs_noise(obs: np.ndarray, item: NoiseItem, rng: np.random.Generator,
                    std: np.ndarray | None = None) -> np.ndarray:
    """obs + N(0, std^2) per entry (e.g. cfg.object_pos_obs_noise, cfg.joint_obs_noise); ``std`` (N,)
    gives each env (row) its own level (``episode_noise_std``), else the item's ``std`` applies."""
    return _add_gaussian(obs, item, rng, std)


def apply_action_noise(action: np.ndarray, item: NoiseItem, rng: np.random.Generator,
                       std: np.ndarray | None = None) -> np.ndarray:
    """action + N(0, std^2) per entry, before the action is mapped to joint targets (which clips);
    ``std`` as in apply_obs_noise."""
    return _add_gaussian(action, item, rng, std)


class LagBuffer:
    """Frame or action lag: with probability p an env receives its previous input instead of the new.

    The previous input (not the previous output) is kept, so a lag is exactly a one-step delay.
    Right after ``reset`` an env has no previous input and always gets the new one, so stale data
    never leaks across episodes.
    """

    def __init__(self, item: LagItem, n_envs: int, rng: np.random.Generator) -> None:
        self.item = item
        self.n_envs = _check_n_envs(n_envs)
        self.rng = rng
        self._prev: np.ndarray | None = None
        self._has_prev = np.zeros(self.n_envs, dtype=bool)

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        """Forget the previous input of the given envs (all when None)."""
        if env_ids is None:
            self._has_prev[:] = False
        else:
            self._has_prev[np.asarray(env_ids)] = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        arr = np.array(x, copy=True)
        if arr.ndim == 0 or arr.shape[0] != self.n_envs:
            raise ValueError(f"LagBuffer input must have leading dim {self.n_envs}, got {arr.shape}")
        if self._prev is not None and self._prev.shape != arr.shape:
            raise ValueError(f"LagBuffer input shape changed from {self._prev.shape} to {arr.shape}")
        out = arr.copy()
        if self.item.enabled and self._prev is not None:
            lag = (self.rng.random(self.n_envs) < self.item.probability) & self._has_prev
            out[lag] = self._prev[lag]
        self._prev = arr
        self._has_prev[:] = True
        return out


class ObjectForce:
    """Random external force on the object (Table IV), to be written to MuJoCo ``xfrc_applied``.

    ``step(dt, mass)`` advances the process by dt seconds: the force decays continuously by
    ``decay`` per ``interval_s`` and, at every interval boundary, each env with probability p gets a
    fresh force of magnitude ``scale * mass`` in a uniformly random direction.
    """

    def __init__(self, item: ForceItem, n_envs: int, rng: np.random.Generator) -> None:
        self.item = item
        self.n_envs = _check_n_envs(n_envs)
        self.rng = rng
        self.force = np.zeros((self.n_envs, 3))
        self._since_tick = 0.0

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        if env_ids is None:
            self.force[:] = 0.0
        else:
            self.force[np.asarray(env_ids)] = 0.0

    def step(self, dt: float, mass: np.ndarray | float) -> np.ndarray:
        """Advance dt seconds and return the current force (N, 3) in newtons (a copy)."""
        dt = as_float(dt, "dt", 0.0)
        m = np.broadcast_to(np.asarray(mass, dtype=np.float64), (self.n_envs,))
        if not np.all(np.isfinite(m)) or np.any(m <= 0.0):
            raise ValueError(f"object mass must be finite and positive, got {m}")
        if not self.item.enabled:
            self.force[:] = 0.0
            return self.force.copy()
        self.force *= self.item.decay ** (dt / self.item.interval_s)
        self._since_tick += dt
        ticks = math.floor(self._since_tick / self.item.interval_s + 1e-9)
        self._since_tick = max(self._since_tick - ticks * self.item.interval_s, 0.0)
        for _ in range(ticks):
            direction = self.rng.normal(size=(self.n_envs, 3))
            direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
            hit = self.rng.random(self.n_envs) < self.item.probability
            self.force[hit] = direction[hit] * (self.item.scale * m[hit])[:, None]
        return self.force.copy()
