"""config/autotune.yaml: load and validate (every error names the offending key)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from recipe_common import robot_spec
from recipe_common.paths import config_path

from .space import ParameterSpace, SpaceError

CONFIG_FORMAT = "recipe_autotune/config/v1"
SIGNAL_KINDS = ("multisine", "chirp", "filtered_steps")
REFINERS = ("least_squares", "cma")


class ConfigError(ValueError):
    """config/autotune.yaml is invalid; the message names the key."""


def default_config_path() -> Path:
    """config/autotune.yaml where the workspace keeps its configuration (recipe_common.paths decides)."""
    try:
        return config_path("autotune.yaml")
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc}; pass the config path explicitly") from None


@dataclass(frozen=True)
class CalibrationConfig:
    num_sequences: int = 8
    duration_s: float = 25.0
    command_rate_hz: float = 10.0
    margin_rad: float = 0.08
    max_velocity_fraction: float = 0.3
    hand_max_velocity: float = 1.5
    arm_amplitude_rad: float = 0.35
    hand_amplitude_rad: float = 1.6
    ramp_s: float = 1.5
    settle_s: float = 1.0
    signals: tuple[str, ...] = SIGNAL_KINDS
    home: dict[str, float] = field(default_factory=dict)
    return_home_max_velocity: float = 0.3
    clearance_margin_m: float = 0.03
    approach_waypoints: tuple[dict[str, float], ...] = ()


@dataclass(frozen=True)
class SearchConfig:
    population: int = 64
    refinement_evaluations: int = 128
    cma_sigma0: float = 0.15
    cma_popsize: int = 12
    batch_size: int = 32
    refiner: str = "least_squares"
    fd_eps: float = 0.01


@dataclass(frozen=True)
class EvaluationConfig:
    threads: int = 2
    joints: str = "all"
    time_chunk: int = 25


@dataclass(frozen=True)
class ReportConfig:
    sensitivity_delta: float = 0.1
    constrained_threshold: float = 0.02
    overlay_sequence: int = 0


@dataclass(frozen=True)
class AutotuneConfig:
    hand: str
    calibration: CalibrationConfig
    search: SearchConfig
    evaluation: EvaluationConfig
    report: ReportConfig
    space: ParameterSpace

    def with_overrides(self, **sections: Mapping[str, Any]) -> AutotuneConfig:
        """A copy with some section fields replaced, e.g. ``search={"population": 8}`` (tests, CLI)."""
        out = self
        for name, values in sections.items():
            current = getattr(out, name)
            bad = set(values) - {f.name for f in fields(current)}
            if bad:
                raise ConfigError(f"{name}: unknown key(s) {sorted(bad)}")
            updated = replace(current, **values)
            _validate_section(name, updated, out.hand)
            out = replace(out, **{name: updated})
        return out


def _number(
    section: str,
    key: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> Any:
    where = f"{section}.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if integer and (not isinstance(value, int) and not float(value).is_integer()):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{where}: must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{where}: must be <= {high}, got {value!r}")
    return int(value) if integer else float(value)


def _validate_section(name: str, section: Any, hand: str) -> None:
    if name == "calibration":
        c: CalibrationConfig = section
        known = set(robot_spec.actuated_joint_names())
        _number(name, "num_sequences", c.num_sequences, integer=True, low=1)
        _number(name, "duration_s", c.duration_s, low=0.0, low_open=True)
        _number(name, "command_rate_hz", c.command_rate_hz, low=0.0, low_open=True, high=1000.0)
        _number(name, "margin_rad", c.margin_rad, low=0.0)
        _number(name, "max_velocity_fraction", c.max_velocity_fraction, low=0.0, low_open=True, high=1.0)
        _number(name, "hand_max_velocity", c.hand_max_velocity, low=0.0, low_open=True)
        _number(name, "arm_amplitude_rad", c.arm_amplitude_rad, low=0.0)
        _number(name, "hand_amplitude_rad", c.hand_amplitude_rad, low=0.0)
        _number(name, "ramp_s", c.ramp_s, low=0.0)
        _number(name, "settle_s", c.settle_s, low=0.0)
        _number(name, "return_home_max_velocity", c.return_home_max_velocity, low=0.0, low_open=True)
        _number(name, "clearance_margin_m", c.clearance_margin_m, low=0.0)
        for i, wp in enumerate(c.approach_waypoints):
            if not isinstance(wp, Mapping) or not wp:
                raise ConfigError(f"calibration.approach_waypoints[{i}]: expected a mapping joint -> rad")
            for joint, value in wp.items():
                if joint not in known:
                    raise ConfigError(f"calibration.approach_waypoints[{i}].{joint}: not an actuated joint")
                _number(f"calibration.approach_waypoints[{i}]", joint, value)
        if 2 * c.ramp_s + c.settle_s >= c.duration_s:
            raise ConfigError(
                f"calibration.duration_s ({c.duration_s}) must exceed 2*ramp_s + settle_s "
                f"({2 * c.ramp_s + c.settle_s}) to leave time for motion"
            )
        if not c.signals or any(s not in SIGNAL_KINDS for s in c.signals):
            raise ConfigError(
                f"calibration.signals: expected a non-empty list of {list(SIGNAL_KINDS)}, "
                f"got {list(c.signals)}"
            )
        for joint, value in c.home.items():
            if joint not in known:
                raise ConfigError(f"calibration.home.{joint}: not an actuated joint of robot_spec")
            _number("calibration.home", joint, value)
    elif name == "search":
        s: SearchConfig = section
        _number(name, "population", s.population, integer=True, low=1)
        _number(name, "refinement_evaluations", s.refinement_evaluations, integer=True, low=0)
        _number(name, "cma_sigma0", s.cma_sigma0, low=0.0, low_open=True, high=1.0)
        _number(name, "cma_popsize", s.cma_popsize, integer=True, low=2)
        _number(name, "batch_size", s.batch_size, integer=True, low=1)
        _number(name, "fd_eps", s.fd_eps, low=0.0, low_open=True, high=0.2)
        if s.refiner not in REFINERS:
            raise ConfigError(f"search.refiner: expected one of {list(REFINERS)}, got {s.refiner!r}")
    elif name == "evaluation":
        e: EvaluationConfig = section
        _number(name, "threads", e.threads, integer=True, low=1, high=64)
        _number(name, "time_chunk", e.time_chunk, integer=True, low=1)
        if e.joints not in ("all", "tuned"):
            raise ConfigError(f"evaluation.joints: expected 'all' or 'tuned', got {e.joints!r}")
    elif name == "report":
        r: ReportConfig = section
        _number(name, "sensitivity_delta", r.sensitivity_delta, low=0.0, low_open=True, high=0.5)
        _number(name, "constrained_threshold", r.constrained_threshold, low=0.0)
        _number(name, "overlay_sequence", r.overlay_sequence, integer=True, low=0)


_SECTIONS: dict[str, type] = {
    "calibration": CalibrationConfig,
    "search": SearchConfig,
    "evaluation": EvaluationConfig,
    "report": ReportConfig,
}


def _build_section(name: str, raw: Any, hand: str) -> Any:
    cls = _SECTIONS[name]
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {type(raw).__name__}")
    allowed = {f.name for f in fields(cls)}
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{name}: unknown key(s) {sorted(unknown)}; allowed {sorted(allowed)}")
    values = dict(raw)
    if "signals" in values:
        if not isinstance(values["signals"], list):
            raise ConfigError(f"calibration.signals: expected a list, got {values['signals']!r}")
        values["signals"] = tuple(values["signals"])
    if "home" in values:
        if values["home"] is None:
            values["home"] = {}
        if not isinstance(values["home"], Mapping):
            raise ConfigError(f"calibration.home: expected a mapping joint -> rad, got {values['home']!r}")
        values["home"] = dict(values["home"])
    if "approach_waypoints" in values:
        if not isinstance(values["approach_waypoints"], list):
            raise ConfigError("calibration.approach_waypoints: expected a list of mappings joint -> rad")
        values["approach_waypoints"] = tuple(values["approach_waypoints"])
    section = cls(**values)
    _validate_section(name, section, hand)
    return section


def config_from_dict(raw: Any) -> AutotuneConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"autotune config: expected a mapping at the top level, got {type(raw).__name__}")
    fmt = raw.get("format")
    if fmt != CONFIG_FORMAT:
        raise ConfigError(f"format: expected {CONFIG_FORMAT!r}, got {fmt!r}")
    unknown = set(raw) - {"format", "hand", "groups", *_SECTIONS}
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}")
    hand = raw.get("hand", robot_spec.DEFAULT_HAND)
    if hand not in robot_spec.HANDS:
        raise ConfigError(f"hand: {hand!r} is not one of {sorted(robot_spec.HANDS)}")
    sections = {name: _build_section(name, raw.get(name), hand) for name in _SECTIONS}
    if "groups" not in raw:
        raise ConfigError("groups: missing (the parameter space)")
    try:
        space = ParameterSpace.from_config(raw["groups"], hand)
    except SpaceError as exc:
        raise ConfigError(str(exc)) from None
    return AutotuneConfig(hand=hand, space=space, **sections)


def load_config(path: str | Path | None = None) -> AutotuneConfig:
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise ConfigError(f"autotune config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
