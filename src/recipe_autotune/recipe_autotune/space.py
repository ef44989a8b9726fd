"""The tunable parameter space: named groups of scalars, each moving one or more ModelParams fields.

Every parameter is one scalar ``x`` with a range around the manufacturer value. It maps onto one or
more dotted ModelParams paths (``joints.<joint or pattern>.<field>``, ``coupling.<...>.k|b``,
``links.<body or pattern>.mass_scale|inertia_scale``) by its mode:

* ``scale``: field = manufacturer * x (gains, damping: the natural uncertainty is relative),
* ``offset``: field = manufacturer + x (zero offsets, coupling b, range shifts),
* ``absolute``: field = x (link mass/inertia scales are already relative to the manufacturer).

Joint and coupling patterns are expanded here against robot_spec, so a ``scale`` parameter multiplies each
joint's own manufacturer value (a pattern key in the overlay would give every matched joint the same
value). Link patterns pass through to ModelParams unchanged (link fields are scales, manufacturer 1).

Search works in the normalized space u in [0, 1]^d: linear or log sampling is the map u -> x.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recipe_common import robot_spec
from recipe_common.config import ConfigError, as_float, as_str, require_keys

JOINT_FIELDS = (
    "kp",
    "kd",
    "armature",
    "damping",
    "frictionloss",
    "range_offset",
    "pos_offset",
    "effort_limit",
)
COUPLING_FIELDS = ("k", "b")
LINK_FIELDS = ("mass_scale", "inertia_scale")
SECTION_FIELDS: dict[str, tuple[str, ...]] = {
    "joints": JOINT_FIELDS,
    "coupling": COUPLING_FIELDS,
    "links": LINK_FIELDS,
}
MODES = ("scale", "offset", "absolute")
SAMPLINGS = ("linear", "log")
LINK_MANUFACTURER_VALUE = 1.0
# Fields ModelParams.defaults may leave unset because "no offset" is their manufacturer value.
NEUTRAL_VALUES: dict[str, Any] = {"pos_offset": 0.0, "range_offset": [0.0, 0.0]}


class SpaceError(ConfigError):
    """A parameter space declaration (``groups:`` of config/autotune.yaml) is invalid; names the key."""


@dataclass(frozen=True)
class ParamPath:
    """One dotted ModelParams path, ``section.key.field`` (the key may be an fnmatch pattern)."""

    section: str
    key: str
    field: str

    @classmethod
    def parse(cls, text: str, where: str = "path") -> ParamPath:
        if not isinstance(text, str):
            raise SpaceError(f"{where}: expected a string like 'joints.<name>.<field>', got {text!r}")
        parts = text.split(".")
        if len(parts) != 3 or not all(parts):
            raise SpaceError(f"{where}: {text!r} is not of the form '<section>.<name or pattern>.<field>'")
        section, key, field = parts
        if section not in SECTION_FIELDS:
            raise SpaceError(
                f"{where}: unknown section {section!r} in {text!r}; expected one of {sorted(SECTION_FIELDS)}"
            )
        if field not in SECTION_FIELDS[section]:
            raise SpaceError(
                f"{where}: unknown field {field!r} in {text!r}; {section} fields are "
                f"{list(SECTION_FIELDS[section])}"
            )
        return cls(section, key, field)

    def __str__(self) -> str:
        return f"{self.section}.{self.key}.{self.field}"

    def expand(self, hand: str) -> list[ParamPath]:
        """Concrete paths for joint/coupling patterns; links stay as given (bodies are not in robot_spec)."""
        if self.section == "links":
            return [self]
        names = (
            robot_spec.state_joint_names(hand)
            if self.section == "joints"
            else robot_spec.hand_coupled_joint_names(hand)
        )
        matched = [n for n in names if fnmatch.fnmatchcase(n, self.key)]
        if not matched:
            raise SpaceError(
                f"path {self}: {self.key!r} matches no {self.section} joint of the {hand!r} hand "
                f"model (names come from recipe_common.robot_spec)"
            )
        return [ParamPath(self.section, n, self.field) for n in matched]


@dataclass(frozen=True)
class Parameter:
    """One tunable scalar x in [low, high] and the ModelParams fields it drives."""

    name: str
    group: str
    paths: tuple[ParamPath, ...]  # concrete for joints/coupling, possibly patterns for links
    mode: str
    low: float
    high: float
    sampling: str
    lock: float | None = None  # fixed at this value (space units), not searched
    prior_std: float | None = None  # Gaussian prior (space units) around prior_mean
    prior_mean: float | None = None  # None: the manufacturer value

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.sampling == "log":
            return np.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.sampling == "log":
            return (np.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (x - self.low) / (self.high - self.low)

    def field_value(self, base_value: Any, x: float) -> Any:
        """The ModelParams field value for scalar x given the manufacturer value (lists element-wise)."""
        if isinstance(base_value, (list, tuple)):
            return [self.field_value(b, x) for b in base_value]
        if self.mode == "scale":
            return float(base_value) * float(x)
        if self.mode == "offset":
            return float(base_value) + float(x)
        return float(x)


def _lock_and_prior(
    raw: Mapping[str, Any], where: str, mode: str, low: float, high: float
) -> tuple[float | None, float | None, float | None]:
    """``lock: true`` (the manufacturer value) or ``lock: <value>``; ``prior: {std, mean (optional)}``."""
    manufacturer = {"scale": 1.0, "offset": 0.0}.get(mode)
    lock = raw.get("lock", False)
    try:
        if lock is True:
            if manufacturer is None:
                raise SpaceError(
                    f"{where}.lock: an 'absolute' parameter has no fixed manufacturer value in the space; "
                    "give the value to lock it at"
                )
            lock = manufacturer
        elif lock is False:
            lock = None
        else:
            lock = as_float(lock, f"{where}.lock (true, false or a value)", low, high)
        prior_std = prior_mean = None
        if "prior" in raw:
            if lock is not None:
                raise SpaceError(f"{where}: 'lock' and 'prior' exclude each other")
            prior = raw["prior"]
            require_keys(prior, f"{where}.prior", ("std",), ("mean",))
            prior_std = as_float(prior["std"], f"{where}.prior.std", positive=True)
            if "mean" in prior:
                prior_mean = as_float(prior["mean"], f"{where}.prior.mean", low, high)
            elif manufacturer is None:
                raise SpaceError(f"{where}.prior.mean: required for an 'absolute' parameter")
    except SpaceError:
        raise
    except ConfigError as exc:
        raise SpaceError(str(exc)) from None
    return lock, prior_std, prior_mean


def _parse_parameter(group: str, idx: int, raw: Any, hand: str) -> Parameter:
    where = f"groups.{group}.parameters[{idx}]"
    try:
        require_keys(
            raw, where, ("name", "path", "mode", "range"), ("sampling", "description", "lock", "prior")
        )
        name = as_str(raw["name"], f"{where}.name", nonempty=True)
        if not name.isidentifier():
            raise SpaceError(f"{where}.name: expected an identifier-like string, got {name!r}")
        where = f"groups.{group}.{name}"
        mode = as_str(raw["mode"], f"{where}.mode", MODES)
        sampling = as_str(raw.get("sampling", "linear"), f"{where}.sampling", SAMPLINGS)
        rng = raw["range"]
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise SpaceError(f"{where}.range: expected [low, high], got {rng!r}")
        low, high = (as_float(v, f"{where}.range[{i}] (a finite number)") for i, v in enumerate(rng))
    except SpaceError:
        raise
    except ConfigError as exc:
        raise SpaceError(str(exc)) from None
    if not low < high:
        raise SpaceError(f"{where}.range: low {low} must be below high {high}")
    if sampling == "log" and low <= 0.0:
        raise SpaceError(f"{where}.range: log sampling needs low > 0, got {low}")
    if mode == "scale" and not low <= 1.0 <= high:
        raise SpaceError(f"{where}.range: a scale range must contain 1 (the manufacturer value), got {rng}")
    if mode == "offset" and not low <= 0.0 <= high:
        raise SpaceError(f"{where}.range: an offset range must contain 0 (the manufacturer value), got {rng}")
    lock, prior_std, prior_mean = _lock_and_prior(raw, where, mode, low, high)
    raw_paths = raw["path"] if isinstance(raw["path"], list) else [raw["path"]]
    if not raw_paths:
        raise SpaceError(f"{where}.path: empty list")
    paths: list[ParamPath] = []
    for j, text in enumerate(raw_paths):
        parsed = ParamPath.parse(text, f"{where}.path[{j}]")
        if parsed.field == "range_offset" and mode != "offset":
            raise SpaceError(
                f"{where}.mode: range_offset moves a joint range; only mode 'offset' (a shift) "
                f"is meaningful, got {mode!r}"
            )
        try:
            paths.extend(parsed.expand(hand))
        except SpaceError as exc:
            raise SpaceError(f"{where}: {exc}") from None
    return Parameter(name, group, tuple(paths), mode, low, high, sampling, lock, prior_std, prior_mean)


class ParameterSpace:
    """An ordered set of parameters (the columns of every candidate matrix)."""

    def __init__(
        self, parameters: Sequence[Parameter], hand: str, descriptions: Mapping[str, str] | None = None
    ):
        self.parameters: tuple[Parameter, ...] = tuple(parameters)
        self.hand = hand
        self.descriptions = dict(descriptions or {})
        self._check_unique()

    @classmethod
    def from_config(cls, groups: Any, hand: str = robot_spec.DEFAULT_HAND) -> ParameterSpace:
        """Parse the ``groups:`` mapping of config/autotune.yaml (validated, errors name the key)."""
        robot_spec.get_hand(hand)
        if not isinstance(groups, Mapping) or not groups:
            raise SpaceError("groups: expected a non-empty mapping of group name -> {parameters: [...]}")
        params: list[Parameter] = []
        descriptions: dict[str, str] = {}
        for group, body in groups.items():
            try:
                require_keys(body, f"groups.{group}", ("parameters",), ("description",))
            except ConfigError as exc:
                raise SpaceError(str(exc)) from None
            plist = body["parameters"]
            if not isinstance(plist, list) or not plist:
                raise SpaceError(f"groups.{group}.parameters: expected a non-empty list")
            descriptions[group] = str(body.get("description", ""))
            params.extend(_parse_parameter(group, i, raw, hand) for i, raw in enumerate(plist))
        return cls(params, hand, descriptions)

    def _check_unique(self) -> None:
        seen_names: set[str] = set()
        owner: dict[str, str] = {}
        for p in self.parameters:
            if p.name in seen_names:
                raise SpaceError(f"parameter name {p.name!r} is declared twice")
            seen_names.add(p.name)
            for path in p.paths:
                other = owner.get(str(path))
                if other is not None and other != p.name:
                    raise SpaceError(f"parameters {other!r} and {p.name!r} both set {path}")
                owner[str(path)] = p.name

    # ---- selection and metadata ----
    @property
    def dim(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(p.group for p in self.parameters))

    def select(self, groups: Iterable[str] | None) -> ParameterSpace:
        """The sub-space of the named groups, in declaration order; empty/None selects every group."""
        wanted = [g for g in (groups or []) if g]
        if not wanted:
            return self
        unknown = [g for g in wanted if g not in self.groups]
        if unknown:
            raise SpaceError(f"unknown parameter group(s) {unknown}; declared groups are {self.groups}")
        keep = [p for p in self.parameters if p.group in wanted]
        return ParameterSpace(keep, self.hand, {g: self.descriptions.get(g, "") for g in wanted})

    def free(self) -> ParameterSpace:
        """The parameters the search moves: every one without a lock."""
        keep = [p for p in self.parameters if p.lock is None]
        return ParameterSpace(keep, self.hand, {g: self.descriptions.get(g, "") for g in self.groups})

    @property
    def locked(self) -> list[Parameter]:
        return [p for p in self.parameters if p.lock is not None]

    def locked_params(self, base: Any) -> Any:
        """base (a recipe_sim ModelParams) with every locked parameter at its lock value."""
        locked = self.locked
        if not locked:
            return base
        sub = ParameterSpace(locked, self.hand)
        return sub.to_params(np.array([p.lock for p in locked], dtype=np.float64), base)

    def prior_residuals(self, x: np.ndarray, weight: float) -> np.ndarray:
        """(K, p) sqrt(weight) * (x - mean) / std of the parameters with a prior (empty when none).

        Appended to the tracking residuals (whose squares sum to the MSE), a one-std deviation costs
        ``weight`` rad^2 of tracking MSE.
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        cols = [i for i, p in enumerate(self.parameters) if p.prior_std is not None]
        if not cols:
            return np.zeros((len(x), 0))
        mean = np.array([self._prior_mean(self.parameters[i]) for i in cols])
        std = np.array([self.parameters[i].prior_std for i in cols])
        return math.sqrt(weight) * (x[:, cols] - mean) / std

    @staticmethod
    def _prior_mean(p: Parameter) -> float:
        if p.prior_mean is not None:
            return p.prior_mean
        return 1.0 if p.mode == "scale" else 0.0

    def touched_joints(self) -> list[str]:
        """State joints whose tracking the selected parameters can change directly (for MSE selection)."""
        names = set()
        for p in self.parameters:
            for path in p.paths:
                if path.section in ("joints", "coupling"):
                    names.add(path.key)
        return [n for n in robot_spec.state_joint_names(self.hand) if n in names]

    # ---- normalized space ----
    def from_unit(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if u.shape[-1] != self.dim:
            raise ValueError(f"candidate has {u.shape[-1]} entries, space has {self.dim} parameters")
        return np.stack([p.from_unit(u[..., i]) for i, p in enumerate(self.parameters)], axis=-1)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.dim:
            raise ValueError(f"candidate has {x.shape[-1]} entries, space has {self.dim} parameters")
        return np.stack([p.to_unit(x[..., i]) for i, p in enumerate(self.parameters)], axis=-1)

    def manufacturer_values(self, base: Any) -> np.ndarray:
        """x that reproduces the manufacturer model: scale 1, offset 0, absolute = the base value."""
        out = np.empty(self.dim)
        for i, p in enumerate(self.parameters):
            if p.mode == "scale":
                out[i] = 1.0
            elif p.mode == "offset":
                out[i] = 0.0
            else:
                out[i] = float(_base_value(base, p.paths[0]))
        return out

    # ---- mapping onto ModelParams ----
    def check_against(self, base: Any) -> None:
        """Fail early where a parameter cannot move its field (scale around a manufacturer value of 0)."""
        for p in self.parameters:
            for path in p.paths:
                value = _base_value(base, path)
                if p.mode == "scale" and np.all(np.asarray(value, dtype=np.float64) == 0.0):
                    raise SpaceError(
                        f"parameter {p.group}.{p.name}: mode 'scale' cannot move {path} whose "
                        f"manufacturer value is 0; use mode 'offset' or 'absolute'"
                    )

    def overlay_dict(self, x: np.ndarray, base: Any) -> dict[str, dict[str, dict[str, Any]]]:
        """The ModelParams overlay (joints/coupling/links sections) that candidate x stands for."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ValueError(f"candidate must have shape ({self.dim},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"candidate has non-finite entries: {x}")
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for p, xi in zip(self.parameters, x, strict=True):
            for path in p.paths:
                value = p.field_value(_base_value(base, path), float(xi))
                out.setdefault(path.section, {}).setdefault(path.key, {})[path.field] = value
        return out

    def to_params(self, x: np.ndarray, base: Any) -> Any:
        """base (a recipe_sim ModelParams) merged with candidate x."""
        return base.merged(self.overlay_dict(x, base))

    def describe(self, x: np.ndarray) -> dict[str, float]:
        return {p.name: float(v) for p, v in zip(self.parameters, np.asarray(x), strict=True)}


_BASE_CACHE: dict[tuple[int, str], tuple[Any, Any]] = {}


def _base_value(base: Any, path: ParamPath) -> Any:
    """Manufacturer value of a concrete path; link fields are scales whose manufacturer value is 1.

    Cached per (base object, path): ModelParams.get re-resolves the whole overlay on every call, which
    would dominate candidate construction. ModelParams is immutable, and the cache keeps the base alive
    so its id cannot be reused by another object.
    """
    if path.section == "links":
        return LINK_MANUFACTURER_VALUE
    key = (id(base), str(path))
    hit = _BASE_CACHE.get(key)
    if hit is None or hit[0] is not base:
        if len(_BASE_CACHE) > 20_000:
            _BASE_CACHE.clear()
        try:
            value = base.get(str(path))
        except ValueError:
            if path.field not in NEUTRAL_VALUES:
                raise
            value = NEUTRAL_VALUES[path.field]
        hit = (base, value)
        _BASE_CACHE[key] = hit
    return hit[1]
