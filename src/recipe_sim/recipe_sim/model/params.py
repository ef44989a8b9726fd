"""ModelParams: the tunable robot-model constants, as an ordered overlay on the manufacturer defaults.

Autotune, domain randomization and the sim twin all change the same handful of numbers (PD gains,
joint damping/armature/friction, coupling k/b, link mass/inertia scales, the physics timestep). Keeping
them in one validated, YAML-serializable object lets a tuned model be saved, diffed and re-applied to a
compiled MjModel without recompiling.

Keys under ``joints``, ``coupling`` and ``links`` are exact names or fnmatch patterns. Entries apply in
order and later entries override earlier ones field by field; ``merged`` and ``with_value`` move the keys
they touch to the end, so an overlay always wins over the defaults it is merged onto. Manufacturer
defaults come from config/robot.yaml (gains etc.), robot_spec (coupling k/b, effort limits) and the URDF.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipe_common import config, paths, robot_spec
from recipe_common.config import ConfigError, as_float, as_int
from recipe_sim import assets

FORMAT = "recipe_sim/params/v1"
ROBOT_FORMAT = "recipe_sim/robot/v1"

# Fields that only make sense on joints with a position actuator.
ACTUATOR_FIELDS = frozenset({"kp", "kd", "pos_offset", "effort_limit"})
JOINT_FIELDS = frozenset({"kp", "kd", "armature", "damping", "frictionloss", "range_offset", "pos_offset",
                          "effort_limit"})
NONNEGATIVE_JOINT_FIELDS = frozenset({"kp", "kd", "armature", "damping", "frictionloss", "effort_limit"})
COUPLING_FIELDS = frozenset({"k", "b"})
LINK_FIELDS = frozenset({"mass_scale", "inertia_scale"})
PHYSICS_FIELDS = frozenset({"timestep", "substeps"})
SECTIONS = ("joints", "coupling", "links")


class ParamsError(ConfigError):
    """An overlay names an unknown joint/link/field or carries a bad value."""


def _is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


def _match(key: str, names: Iterable[str]) -> list[str]:
    names = list(names)
    if _is_pattern(key):
        return [n for n in names if fnmatch.fnmatchcase(n, key)]
    return [key] if key in names else []


def _check_field_value(section: str, key: str, fname: str, value: Any) -> Any:
    where = f"{section}.{key}.{fname}"
    if section == "joints":
        if fname == "range_offset":
            lo, hi = config.as_vector(value, where, 2)
            return [float(lo), float(hi)]
        return as_float(value, where, nonnegative=fname in NONNEGATIVE_JOINT_FIELDS)
    if section == "links":
        return as_float(value, where, positive=True)
    return as_float(value, where)  # coupling k, b


@dataclass(frozen=True)
class ModelParams:
    """A validated parameter overlay. Build with ``from_dict``/``from_yaml``/``defaults``; never mutate."""

    hand: str = robot_spec.DEFAULT_HAND
    joints: dict[str, dict[str, Any]] = field(default_factory=dict)
    coupling: dict[str, dict[str, float]] = field(default_factory=dict)
    links: dict[str, dict[str, float]] = field(default_factory=dict)
    physics: dict[str, float | int] = field(default_factory=dict)

    # --- construction ------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], hand: str | None = None) -> ModelParams:
        """Validate a plain dict (the YAML format) and build an overlay; errors name the bad key."""
        try:
            return cls._from_dict(d, hand)
        except ParamsError:
            raise
        except ConfigError as exc:  # value errors from the shared validators
            raise ParamsError(str(exc)) from None

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any], hand: str | None) -> ModelParams:
        if not isinstance(d, Mapping):
            raise ParamsError(f"params: expected a mapping, got {type(d).__name__}")
        allowed = {"format", "hand", *SECTIONS, "physics"}
        unknown = set(d) - allowed
        if unknown:
            raise ParamsError(f"params: unknown top-level key(s) {sorted(unknown)}; "
                              f"allowed: {sorted(allowed)}")
        if "format" in d and d["format"] != FORMAT:
            raise ParamsError(f"params.format: expected {FORMAT!r}, got {d['format']!r}")
        file_hand = d.get("hand")
        if file_hand is not None and hand is not None and file_hand != hand:
            raise ParamsError(f"params.hand: overlay is for hand {file_hand!r} but {hand!r} was requested")
        hand = file_hand or hand or robot_spec.DEFAULT_HAND
        try:
            robot_spec.get_hand(hand)
        except ValueError as exc:
            raise ParamsError(f"params.hand: {exc}") from None

        sections: dict[str, dict[str, dict[str, Any]]] = {}
        for section in SECTIONS:
            raw = d.get(section) or {}
            if not isinstance(raw, Mapping):
                raise ParamsError(f"params.{section}: expected a mapping, got {type(raw).__name__}")
            sections[section] = {
                str(key): _validate_entry(section, str(key), fields, hand) for key, fields in raw.items()
            }
        physics = _validate_physics(d.get("physics") or {})
        return cls(hand=hand, joints=sections["joints"], coupling=sections["coupling"],
                   links=sections["links"], physics=physics)

    @classmethod
    def from_yaml(cls, path: str | Path, hand: str | None = None) -> ModelParams:
        data = config.load_yaml(path)
        try:
            return cls.from_dict(data, hand=hand)
        except ParamsError as exc:
            raise ParamsError(f"{path}: {exc}") from None

    @classmethod
    def defaults(cls, hand: str = robot_spec.DEFAULT_HAND) -> ModelParams:
        """Manufacturer defaults: config/robot.yaml gains etc., robot_spec couplings and effort limits."""
        return _defaults(hand, str(paths.config_dir() / "robot.yaml"))

    @classmethod
    def coerce(cls, value: ModelParams | Mapping[str, Any] | str | Path | None, hand: str) -> ModelParams:
        """Accept the forms callers pass around (object, dict, YAML path, None) as a ModelParams."""
        if value is None:
            return cls(hand=hand)
        if isinstance(value, ModelParams):
            if value.hand != hand:
                raise ParamsError(f"params are for hand {value.hand!r}, model is {hand!r}")
            return value
        if isinstance(value, (str, Path)):
            return cls.from_yaml(value, hand=hand)
        return cls.from_dict(value, hand=hand)

    # --- serialization ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "hand": self.hand,
            "joints": copy.deepcopy(self.joints),
            "coupling": copy.deepcopy(self.coupling),
            "links": copy.deepcopy(self.links),
            "physics": dict(self.physics),
        }

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None))

    # --- combination --------------------------------------------------------------------------------

    def merged(self, other: ModelParams | Mapping[str, Any]) -> ModelParams:
        """``self`` with ``other`` applied on top (field-wise; touched keys move to the end so they win)."""
        other = ModelParams.coerce(other, self.hand)
        out = self.to_dict()
        for section in SECTIONS:
            target: dict[str, dict[str, Any]] = out[section]
            for key, fields in getattr(other, section).items():
                combined = {**target.pop(key, {}), **copy.deepcopy(fields)}
                target[key] = combined
        out["physics"].update(other.physics)
        return ModelParams.from_dict(out)

    def with_value(self, path: str, value: Any) -> ModelParams:
        """New params with one value set, e.g. ``with_value("joints.*_elbow_pitch_joint.kp", 80.0)``."""
        section, key, fname = _split_path(path)
        if section == "physics":
            return self.merged({"physics": {fname: value}})
        return self.merged({section: {key: {fname: value}}})

    # --- lookup -------------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        """Effective value at a dotted path, with manufacturer defaults filled in.

        ``joints.<joint>.<field>`` resolves patterns in order; a pattern key returns the value shared by
        all joints it matches (and raises if they differ).
        """
        section, key, fname = _split_path(path)
        full = self.effective()
        if section == "physics":
            return full.physics[fname]
        resolved = full._resolved[section]
        names = _match(key, resolved)
        if not names:
            raise ParamsError(f"{path}: {key!r} matches no {section} name for hand {self.hand!r}")
        values = []
        for n in names:
            if fname not in resolved[n]:
                raise ParamsError(f"{path}: field {fname!r} has no value for {n!r}")
            values.append(resolved[n][fname])
        if any(v != values[0] for v in values[1:]):
            raise ParamsError(f"{path}: pattern {key!r} matches names with different values {values}")
        return copy.deepcopy(values[0])

    def effective(self) -> ModelParams:
        """The manufacturer defaults with this overlay on top: every field has a value (cached)."""
        return self._effective

    @functools.cached_property
    def _effective(self) -> ModelParams:
        return ModelParams.defaults(self.hand).merged(self)

    @functools.cached_property
    def _resolved(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {section: self.resolve(section) for section in SECTIONS}

    def resolved(self, section: str) -> dict[str, dict[str, Any]]:
        """Like ``resolve`` but cached; treat the result as read-only."""
        if section not in SECTIONS:
            raise ParamsError(f"unknown params section {section!r}; expected one of {list(SECTIONS)}")
        return self._resolved[section]

    def resolve(self, section: str) -> dict[str, dict[str, Any]]:
        """Per-name fields after applying every entry of ``section`` in order (patterns expanded).

        For ``joints``, fields that need an actuator are dropped on coupled joints matched by a pattern.
        """
        names = _section_names(section, self.hand)
        actuated = set(robot_spec.actuated_joint_names())
        out: dict[str, dict[str, Any]] = {n: {} for n in names}
        for key, fields in getattr(self, section).items():
            for n in _match(key, names):
                for fname, value in fields.items():
                    if section == "joints" and fname in ACTUATOR_FIELDS and n not in actuated:
                        continue
                    out[n][fname] = value
        return out


# --- validation helpers ---------------------------------------------------------------------------------


def _section_names(section: str, hand: str) -> list[str]:
    if section == "joints":
        return robot_spec.state_joint_names(hand)
    if section == "coupling":
        return robot_spec.hand_coupled_joint_names(hand)
    if section == "links":
        return assets.moving_link_names(hand)
    raise ParamsError(f"unknown params section {section!r}; expected one of {[*SECTIONS, 'physics']}")


def _validate_entry(section: str, key: str, fields: Any, hand: str) -> dict[str, Any]:
    where = f"{section}.{key}"
    names = _match(key, _section_names(section, hand))
    if not names:
        what = {"joints": "joint", "coupling": "coupled (underactuated) joint", "links": "link"}[section]
        kind = "pattern matches no" if _is_pattern(key) else "unknown"
        raise ParamsError(f"{where}: {kind} {what} {key!r} for hand {hand!r}")
    if not isinstance(fields, Mapping):
        raise ParamsError(f"{where}: expected a mapping of fields, got {fields!r}")
    allowed = {"joints": JOINT_FIELDS, "coupling": COUPLING_FIELDS, "links": LINK_FIELDS}[section]
    unknown = set(fields) - allowed
    if unknown:
        raise ParamsError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if section == "joints" and set(fields) & ACTUATOR_FIELDS:
        actuated = set(robot_spec.actuated_joint_names())
        if not any(n in actuated for n in names):
            bad = sorted(set(fields) & ACTUATOR_FIELDS)
            raise ParamsError(f"{where}: field(s) {bad} need an actuator but {key!r} matches only "
                              "coupled joints")
    return {str(f): _check_field_value(section, key, str(f), v) for f, v in fields.items()}


def _validate_physics(raw: Any) -> dict[str, float | int]:
    if not isinstance(raw, Mapping):
        raise ParamsError(f"physics: expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - PHYSICS_FIELDS
    if unknown:
        raise ParamsError(f"physics: unknown field(s) {sorted(unknown)}; allowed: {sorted(PHYSICS_FIELDS)}")
    out: dict[str, float | int] = {}
    if "timestep" in raw:
        ts = as_float(raw["timestep"], "physics.timestep", positive=True)
        if ts > 0.05:
            raise ParamsError(f"physics.timestep: {ts} s is too large for contact-rich grasping (max 0.05)")
        out["timestep"] = ts
    if "substeps" in raw:
        out["substeps"] = as_int(raw["substeps"], "physics.substeps", minimum=1)
    return out


def _split_path(path: str) -> tuple[str, str, str]:
    if not isinstance(path, str) or "." not in path:
        raise ParamsError(f"bad params path {path!r}; expected e.g. 'joints.<name>.<field>' or "
                          "'physics.timestep'")
    section, rest = path.split(".", 1)
    if section == "physics":
        if rest not in PHYSICS_FIELDS:
            raise ParamsError(f"{path}: unknown physics field {rest!r}; allowed: {sorted(PHYSICS_FIELDS)}")
        return section, "", rest
    if section not in SECTIONS:
        raise ParamsError(f"{path}: unknown section {section!r}; expected one of {[*SECTIONS, 'physics']}")
    if "." not in rest:
        raise ParamsError(f"{path}: expected '{section}.<name>.<field>'")
    key, fname = rest.rsplit(".", 1)
    return section, key, fname


# --- manufacturer defaults ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _defaults(hand: str, robot_yaml: str) -> ModelParams:
    data = config.load_yaml(robot_yaml)
    where = robot_yaml
    if data.get("format") != ROBOT_FORMAT:
        raise ConfigError(f"{where}: format must be {ROBOT_FORMAT!r}, got {data.get('format')!r}")
    hands = data.get("hands")
    if not isinstance(hands, Mapping) or hand not in hands:
        raise ConfigError(f"{where}: hands.{hand} is missing")
    lim = robot_spec.joint_limits(hand)
    efforts = {n: {"effort_limit": lim[n].effort} for n in robot_spec.arm_joint_names() if lim[n].effort > 0}
    coupling = {
        f"{robot_spec.HAND_PREFIX[s]}_{c.underactuated_suffix}_joint": {"k": c.k, "b": c.b}
        for s in robot_spec.SIDES
        for c in robot_spec.get_hand(hand).couplings
    }
    hand_cfg = hands[hand] or {}
    if not isinstance(hand_cfg, Mapping):
        raise ConfigError(f"{where}: hands.{hand} must be a mapping")
    joints: dict[str, Any] = {**efforts}
    for key, value in (data.get("arm_joints") or {}).items():
        joints[key] = value
    for key, value in (hand_cfg.get("joints") or {}).items():
        joints[key] = value
    extra_hand = set(hand_cfg) - {"joints"}
    if extra_hand:
        raise ConfigError(f"{where}: hands.{hand}: unknown key(s) {sorted(extra_hand)}")
    try:
        return ModelParams.from_dict(
            {"hand": hand, "joints": joints, "coupling": coupling, "links": data.get("links") or {},
             "physics": data.get("physics") or {}}
        )
    except ParamsError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def solver_options(robot_yaml: str | Path | None = None) -> dict[str, Any]:
    """Fixed MuJoCo solver settings from robot.yaml (not tunable, so not part of ModelParams)."""
    path = Path(robot_yaml) if robot_yaml else paths.config_dir() / "robot.yaml"
    raw = config.load_yaml(path).get("solver") or {}
    allowed = {"cone": {"elliptic", "pyramidal"}, "integrator": {"implicitfast", "implicit", "euler", "rk4"}}
    numeric = {"impratio", "iterations", "ls_iterations", "tolerance", "noslip_iterations"}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}: solver.{key}"
        if key in allowed:
            if value not in allowed[key]:
                raise ConfigError(f"{where}: expected one of {sorted(allowed[key])}, got {value!r}")
            out[key] = value
        elif key in numeric:
            out[key] = as_float(value, where, positive=key not in {"noslip_iterations"}, nonnegative=True)
        else:
            raise ConfigError(f"{where}: unknown solver option; allowed: {sorted(set(allowed) | numeric)}")
    return out
