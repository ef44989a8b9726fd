"""config/autotune.yaml: load and validate with recipe_common.config (every error names file and key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recipe_common import robot_spec
from recipe_common.config import (
    ConfigError,
    as_float,
    as_int,
    as_list,
    as_str,
    check_keys,
    in_file,
    mapping,
    parse_yaml,
)
from recipe_common.paths import config_path

from .space import ParameterSpace

__all__ = [
    "AutotuneConfig",
    "CalibrationConfig",
    "ConfigError",
    "EvaluationConfig",
    "ReportConfig",
    "SearchConfig",
    "ValidationConfig",
    "config_from_dict",
    "default_config_path",
    "load_config",
]

CONFIG_FORMAT = "recipe_autotune/config/v1"
BROADBAND_SIGNALS = ("multisine", "chirp", "filtered_steps")  # whole sequences around home (calibration.py)
SEGMENT_FAMILIES = ("hold", "steps", "isolation")  # segments home -> home (segments.py)
SIGNAL_KINDS = BROADBAND_SIGNALS + SEGMENT_FAMILIES
REFINERS = ("least_squares", "cma")


def default_config_path() -> Path:
    """config/autotune.yaml where the workspace keeps its configuration (recipe_common.paths decides)."""
    try:
        return config_path("autotune.yaml")
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc}; pass the config path explicitly") from None


@dataclass(frozen=True)
class CalibrationConfig:
    num_sequences: int = 8
    max_sequences: int = 64
    duration_s: float = 25.0
    command_rate_hz: float = 10.0
    margin_rad: float = 0.08
    max_velocity_fraction: float = 0.3
    hand_max_velocity: float = 1.5
    arm_amplitude_rad: float = 0.35
    hand_amplitude_rad: float = 1.6
    ramp_s: float = 1.5
    settle_s: float = 1.0
    signals: tuple[str, ...] = SEGMENT_FAMILIES
    segment_s: float = 5.0
    hold_amplitude_rad: float = 0.9
    design_pool: float = 2.0
    home: dict[str, float] = field(default_factory=dict)
    return_home_max_velocity: float = 0.3
    clearance_margin_m: float = 0.03
    approach_waypoints: tuple[dict[str, float], ...] = ()


@dataclass(frozen=True)
class ValidationConfig:
    """Held-out sequences: recorded with the training ones, never seen by the search."""

    num_sequences: int = 1
    signals: tuple[str, ...] = ("filtered_steps",)
    home: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchConfig:
    population: int = 64
    max_population: int = 4096
    refinement_evaluations: int = 128
    cma_sigma0: float = 0.15
    cma_popsize: int = 12
    batch_size: int = 32
    refiner: str = "least_squares"
    fd_eps: float = 0.05
    prior_weight: float = 1e-7


@dataclass(frozen=True)
class EvaluationConfig:
    threads: int = 2
    joints: str = "all"
    time_chunk: int = 25
    max_steps_per_call: int = 50_000
    contacts: str = "auto"


@dataclass(frozen=True)
class ReportConfig:
    tolerance: float = 0.1  # relative: a parameter is judged on a move by 10% of its value
    offset_tolerance: float = 0.005  # rad: ... or by this much for offset parameters
    constrained_threshold: float = 0.1  # relative MSE rise (train and held-out) that move must cause
    edge_fraction: float = 0.02  # of the normalized range: closer to an end is flagged "at edge"
    heldout_warning_ratio: float = 2.0  # warn when held-out MSE exceeds this times the training MSE


@dataclass(frozen=True)
class AutotuneConfig:
    hand: str
    calibration: CalibrationConfig
    validation: ValidationConfig
    search: SearchConfig
    evaluation: EvaluationConfig
    report: ReportConfig
    space: ParameterSpace


def _keys(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _joint_positions(raw: Any, where: str) -> dict[str, float]:
    """A mapping actuated joint name -> radians (home pose, approach waypoints)."""
    known = set(robot_spec.actuated_joint_names())
    out = {}
    for joint, value in mapping(raw, where).items():
        if joint not in known:
            raise ConfigError(f"{where}.{joint}: not an actuated joint of robot_spec")
        out[str(joint)] = as_float(value, f"{where}.{joint}")
    return out


def _signals(raw: Any, where: str) -> tuple[str, ...]:
    """A non-empty list of signal kinds, all broadband or all segment families (they build sequences
    differently: whole sequences around home vs segments from home back to home)."""
    signals = as_list(raw, where, str, min_len=1)
    for i, kind in enumerate(signals):
        as_str(kind, f"{where}[{i}]", SIGNAL_KINDS)
    if set(signals) & set(BROADBAND_SIGNALS) and set(signals) & set(SEGMENT_FAMILIES):
        raise ConfigError(
            f"{where}: mixes broadband signals {list(BROADBAND_SIGNALS)} with segment families "
            f"{list(SEGMENT_FAMILIES)}; use one kind per list"
        )
    return tuple(signals)


def _calibration(raw: Mapping[str, Any]) -> CalibrationConfig:
    w = "calibration"
    check_keys(raw, _keys(CalibrationConfig), w)
    d = CalibrationConfig()
    get = raw.get
    signals = _signals(get("signals", list(d.signals)), f"{w}.signals")
    waypoints = as_list(get("approach_waypoints", []), f"{w}.approach_waypoints", Mapping)
    cal = CalibrationConfig(
        num_sequences=as_int(get("num_sequences", d.num_sequences), f"{w}.num_sequences", 1),
        max_sequences=as_int(get("max_sequences", d.max_sequences), f"{w}.max_sequences", 1),
        duration_s=as_float(get("duration_s", d.duration_s), f"{w}.duration_s", positive=True),
        command_rate_hz=as_float(
            get("command_rate_hz", d.command_rate_hz), f"{w}.command_rate_hz", 0.0, 1000.0, exclusive=True
        ),
        margin_rad=as_float(get("margin_rad", d.margin_rad), f"{w}.margin_rad", nonnegative=True),
        max_velocity_fraction=as_float(
            get("max_velocity_fraction", d.max_velocity_fraction),
            f"{w}.max_velocity_fraction",
            0.0,
            1.0,
            exclusive=True,
        ),
        hand_max_velocity=as_float(
            get("hand_max_velocity", d.hand_max_velocity), f"{w}.hand_max_velocity", positive=True
        ),
        arm_amplitude_rad=as_float(
            get("arm_amplitude_rad", d.arm_amplitude_rad), f"{w}.arm_amplitude_rad", nonnegative=True
        ),
        hand_amplitude_rad=as_float(
            get("hand_amplitude_rad", d.hand_amplitude_rad), f"{w}.hand_amplitude_rad", nonnegative=True
        ),
        ramp_s=as_float(get("ramp_s", d.ramp_s), f"{w}.ramp_s", nonnegative=True),
        settle_s=as_float(get("settle_s", d.settle_s), f"{w}.settle_s", nonnegative=True),
        signals=signals,
        segment_s=as_float(get("segment_s", d.segment_s), f"{w}.segment_s", positive=True),
        hold_amplitude_rad=as_float(
            get("hold_amplitude_rad", d.hold_amplitude_rad), f"{w}.hold_amplitude_rad", nonnegative=True
        ),
        design_pool=as_float(get("design_pool", d.design_pool), f"{w}.design_pool", 1.0, 20.0),
        home=_joint_positions(get("home") or {}, f"{w}.home"),
        return_home_max_velocity=as_float(
            get("return_home_max_velocity", d.return_home_max_velocity),
            f"{w}.return_home_max_velocity",
            positive=True,
        ),
        clearance_margin_m=as_float(
            get("clearance_margin_m", d.clearance_margin_m), f"{w}.clearance_margin_m", nonnegative=True
        ),
        approach_waypoints=tuple(
            _joint_positions(wp, f"{w}.approach_waypoints[{i}]") for i, wp in enumerate(waypoints)
        ),
    )
    if any(not wp for wp in cal.approach_waypoints):
        raise ConfigError(f"{w}.approach_waypoints: every waypoint must set at least one joint")
    if cal.num_sequences > cal.max_sequences:
        raise ConfigError(
            f"{w}.num_sequences ({cal.num_sequences}) exceeds {w}.max_sequences ({cal.max_sequences})"
        )
    if 2 * cal.ramp_s + cal.settle_s >= cal.duration_s:
        raise ConfigError(
            f"{w}.duration_s ({cal.duration_s}) must exceed 2*ramp_s + settle_s "
            f"({2 * cal.ramp_s + cal.settle_s}) to leave time for motion"
        )
    return cal


def _validation(raw: Mapping[str, Any]) -> ValidationConfig:
    w = "validation"
    check_keys(raw, _keys(ValidationConfig), w)
    d = ValidationConfig()
    return ValidationConfig(
        num_sequences=as_int(raw.get("num_sequences", d.num_sequences), f"{w}.num_sequences", 0, 64),
        signals=_signals(raw.get("signals", list(d.signals)), f"{w}.signals"),
        home=_joint_positions(raw.get("home") or {}, f"{w}.home"),
    )


def _search(raw: Mapping[str, Any]) -> SearchConfig:
    w = "search"
    check_keys(raw, _keys(SearchConfig), w)
    d = SearchConfig()
    get = raw.get
    out = SearchConfig(
        population=as_int(get("population", d.population), f"{w}.population", 1),
        max_population=as_int(get("max_population", d.max_population), f"{w}.max_population", 1),
        refinement_evaluations=as_int(
            get("refinement_evaluations", d.refinement_evaluations), f"{w}.refinement_evaluations", 0
        ),
        cma_sigma0=as_float(get("cma_sigma0", d.cma_sigma0), f"{w}.cma_sigma0", 0.0, 1.0, exclusive=True),
        cma_popsize=as_int(get("cma_popsize", d.cma_popsize), f"{w}.cma_popsize", 2),
        batch_size=as_int(get("batch_size", d.batch_size), f"{w}.batch_size", 1),
        refiner=as_str(get("refiner", d.refiner), f"{w}.refiner", REFINERS),
        fd_eps=as_float(get("fd_eps", d.fd_eps), f"{w}.fd_eps", 0.0, 0.2, exclusive=True),
        prior_weight=as_float(get("prior_weight", d.prior_weight), f"{w}.prior_weight", nonnegative=True),
    )
    if out.population > out.max_population:
        raise ConfigError(
            f"{w}.population ({out.population}) exceeds {w}.max_population ({out.max_population})"
        )
    return out


def _evaluation(raw: Mapping[str, Any]) -> EvaluationConfig:
    w = "evaluation"
    check_keys(raw, _keys(EvaluationConfig), w)
    d = EvaluationConfig()
    return EvaluationConfig(
        threads=as_int(raw.get("threads", d.threads), f"{w}.threads", 1, 64),
        joints=as_str(raw.get("joints", d.joints), f"{w}.joints", ("all", "tuned")),
        time_chunk=as_int(raw.get("time_chunk", d.time_chunk), f"{w}.time_chunk", 1),
        max_steps_per_call=as_int(
            raw.get("max_steps_per_call", d.max_steps_per_call), f"{w}.max_steps_per_call", 1000
        ),
        contacts=as_str(raw.get("contacts", d.contacts), f"{w}.contacts", ("auto", "on", "off")),
    )


def _report(raw: Mapping[str, Any]) -> ReportConfig:
    w = "report"
    check_keys(raw, _keys(ReportConfig), w)
    d = ReportConfig()
    get = raw.get
    return ReportConfig(
        tolerance=as_float(get("tolerance", d.tolerance), f"{w}.tolerance", 0.0, 1.0, exclusive=True),
        offset_tolerance=as_float(
            get("offset_tolerance", d.offset_tolerance), f"{w}.offset_tolerance", positive=True
        ),
        constrained_threshold=as_float(
            get("constrained_threshold", d.constrained_threshold),
            f"{w}.constrained_threshold",
            nonnegative=True,
        ),
        edge_fraction=as_float(get("edge_fraction", d.edge_fraction), f"{w}.edge_fraction", 0.0, 0.25),
        heldout_warning_ratio=as_float(
            get("heldout_warning_ratio", d.heldout_warning_ratio), f"{w}.heldout_warning_ratio", 1.0
        ),
    )


_SECTIONS = {
    "calibration": _calibration,
    "validation": _validation,
    "search": _search,
    "evaluation": _evaluation,
    "report": _report,
}


def config_from_dict(raw: Any) -> AutotuneConfig:
    """Validate the parsed YAML mapping; unknown keys anywhere are errors naming the dotted key."""
    raw = mapping(raw, "autotune config (top level)")
    unknown = sorted(str(k) for k in set(raw) - {"format", "hand", "groups", *_SECTIONS})
    if unknown:
        raise ConfigError(
            f"unknown top-level key(s) {unknown}; allowed: format, hand, groups, {', '.join(_SECTIONS)}"
        )
    fmt = raw.get("format")
    if fmt != CONFIG_FORMAT:
        raise ConfigError(f"format: expected {CONFIG_FORMAT!r}, got {fmt!r}")
    hand = as_str(raw.get("hand", robot_spec.DEFAULT_HAND), "hand", sorted(robot_spec.HANDS))
    sections = {name: parse(mapping(raw.get(name) or {}, name)) for name, parse in _SECTIONS.items()}
    if "groups" not in raw:
        raise ConfigError("groups: missing (the parameter space)")
    space = ParameterSpace.from_config(raw["groups"], hand)
    shared = set(sections["validation"].signals) & set(sections["calibration"].signals)
    if shared:
        raise ConfigError(
            f"validation.signals: {sorted(shared)} also drive the training motion (calibration.signals); "
            "held-out motion must be of a different family"
        )
    return AutotuneConfig(hand=hand, space=space, **sections)


def load_config(path: str | Path | None = None) -> AutotuneConfig:
    """config/autotune.yaml (or ``path``), validated; every error is a ConfigError naming the file."""
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise ConfigError(f"autotune config {path} does not exist")
    raw = parse_yaml(path.read_text(), f"{path} (not valid YAML)")
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise in_file(path, exc) from None
