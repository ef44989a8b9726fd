"""The one configuration toolkit: read YAML with a format key, reject unknown keys, type and bound values.

Every config loader of the workspace (scene, objects, tasks, rewards, randomization, PPO, driver,
autotune, perception, policy) builds on these functions, so that a bad file always fails the same way:
one ``ConfigError`` whose message names the file and the dotted key, and what was allowed. A typo in a
YAML key that is silently ignored shows up hours later as a robot or a policy that misbehaves; here it
stops the program at load time.

YAML is read with a loader that also accepts ``1e9`` and ``1.0e12`` as numbers (PyYAML's YAML 1.1
resolver reads them as strings) and refuses duplicate keys (the second would silently win).
"""

from __future__ import annotations

import copy
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class ConfigError(ValueError):
    """A configuration file or mapping is malformed; the message names the file and the key."""


class _Loader(yaml.SafeLoader):
    """SafeLoader + exponent floats without a dot or sign (``1e9``, ``1.0e12``) + duplicate-key check."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let PyYAML report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str = "<string>") -> Any:
    """Parse YAML text with the workspace loader; syntax errors become ConfigError naming ``where``."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: malformed YAML: {exc}") from None


def key_values(items: Iterable[str], option: str) -> dict[str, Any]:
    """Command-line ``KEY=VALUE`` overrides (``--set``, ``--runtime``) with YAML-read values (``0.02``,
    ``true``, ``[1, 2]``); the caller checks the keys against its own schema."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = parse_yaml(text, f"{option} {key}")
    return out


def load_yaml(path: str | Path, expected_format: str | None = None) -> dict[str, Any]:
    """Read a YAML mapping (and check its ``format`` key when ``expected_format`` is given).

    A missing file is a FileNotFoundError naming the path; an empty file, a non-mapping top level,
    a syntax error or a wrong format is a ConfigError naming the path.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except OSError as exc:
        raise FileNotFoundError(f"cannot read config file {path}: {exc}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    if expected_format is not None and data.get("format") != expected_format:
        raise ConfigError(f"{path}: key 'format' must be {expected_format!r}, got {data.get('format')!r}")
    return data


def in_file(path: str | Path, exc: ConfigError) -> ConfigError:
    """``exc`` with the file name put in front (for errors raised while validating a loaded mapping)."""
    text = str(exc)
    return exc if text.startswith(str(path)) else ConfigError(f"{path}: {text}")


def load_node_params(path: str | Path, node: str, other_nodes: Iterable[str] = ()) -> dict[str, Any]:
    """The ``<node>: ros__parameters:`` mapping of a ROS 2 params file, read outside ROS (benchmarks, tools).

    The file may hold ``other_nodes``' sections too; any other top-level key, or a node section without
    ``ros__parameters``, is a ConfigError naming the file. The parameters themselves are the caller's to
    validate (wrap its errors with ``in_file``).
    """
    path = Path(path)
    data = load_yaml(path)
    try:
        check_keys(data, [node, *other_nodes], path.name, required=[node])
        check_keys(data[node], ["ros__parameters"], node, required=["ros__parameters"])
        return dict(data[node]["ros__parameters"] or {})
    except ConfigError as exc:
        raise in_file(path, exc) from None


# --------------------------------------------------------------------------- keys


def check_keys(data: Any, allowed: Iterable[str], where: str, required: Iterable[str] = ()) -> None:
    """Reject a non-mapping, unknown keys and missing required keys, naming them with their dotted path."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    allowed = list(allowed)
    unknown = [key for key in data if key not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (all unknown key(s) {unknown}; "
                          f"allowed: {sorted(map(str, allowed))})")
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r} (all missing key(s) {missing})")


def require_keys(data: Any, where: str, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """check_keys with the required and optional keys given apart."""
    required = list(required)
    check_keys(data, [*required, *optional], where, required)


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- values


def as_float(value: Any, where: str, minimum: float | None = None, maximum: float | None = None,
             exclusive: bool = False, *, positive: bool = False, nonnegative: bool = False) -> float:
    """A finite real number within [minimum, maximum] (open at minimum when ``exclusive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{where} must be a number, got {value!r} (expected a number, not "
                          f"{type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    if positive:
        minimum, exclusive = (0.0 if minimum is None else max(minimum, 0.0)), True
    elif nonnegative and (minimum is None or minimum < 0.0):
        minimum = 0.0
    if minimum is not None and (out < minimum or (exclusive and out == minimum)):
        raise ConfigError(f"{where} must be {'>' if exclusive else '>='} {minimum}, got {out}")
    if maximum is not None and out > maximum:
        raise ConfigError(f"{where} must be <= {maximum}, got {out}")
    return out


def as_int(value: Any, where: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{where} must be an integer, got {value!r} (expected an integer, not "
                          f"{type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where} must be <= {maximum}, got {value}")
    return int(value)


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def as_str(value: Any, where: str, choices: Sequence[str] | None = None, nonempty: bool = False) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}")
    if nonempty and not value:
        raise ConfigError(f"{where} must not be empty")
    return value


def as_range(value: Any, where: str, minimum: float | None = None, maximum: float | None = None,
             ) -> tuple[float, float]:
    """A ``[low, high]`` pair with low <= high, both within [minimum, maximum]."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{where} must be a [low, high] pair, got {value!r}")
    low = as_float(value[0], f"{where}[0]", minimum, maximum)
    high = as_float(value[1], f"{where}[1]", minimum, maximum)
    if low > high:
        raise ConfigError(f"{where} must have low <= high, got [{low}, {high}]")
    return low, high


def as_vector(value: Any, where: str, length: int) -> np.ndarray:
    """A list of ``length`` finite numbers as a float64 array."""
    if not isinstance(value, list | tuple) or len(value) != length:
        raise ConfigError(f"{where} must be a list of {length} numbers, got {value!r}")
    return np.array([as_float(v, f"{where}[{i}]") for i, v in enumerate(value)])


def as_list(value: Any, where: str, item: type, min_len: int = 0) -> list[Any]:
    """A list whose items all have type ``item`` (bools are not ints here)."""
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list, got {value!r}")
    for i, v in enumerate(value):
        if not isinstance(v, item) or (isinstance(v, bool) and item is not bool):
            raise ConfigError(f"{where}[{i}] must be a {item.__name__}, got {v!r}")
    if len(value) < min_len:
        raise ConfigError(f"{where} must have at least {min_len} entries, got {len(value)}")
    return list(value)


def has_default(f: Any) -> bool:
    """Whether a dataclass field has a default (a value or a factory): an optional key of its section."""
    import dataclasses

    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def field_default(f: Any) -> Any:
    """The default of a dataclass field (its factory's value for mutable defaults)."""
    import dataclasses

    if not has_default(f):
        raise TypeError(f"field {f.name!r} has no default")
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


@dataclass(frozen=True)
class Bounds:
    """The physically sensible range of a numeric setting: ``low < v`` (``low <= v`` if ``closed_low``),
    ``v <= high``. Upper ends catch typos (``1e9`` for ``1e-1``) that would switch a safety check off."""

    low: float
    high: float
    closed_low: bool = False
    unit: str = ""

    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{'[' if self.closed_low else '('}{self.low:g}, {self.high:g}]{unit}"

    def violation(self, value: float) -> str | None:
        """What is wrong with ``value`` ("must be > 0", "must be <= 0.5"), or None when it is inside."""
        if value < self.low or (value == self.low and not self.closed_low):
            return f"must be {'>=' if self.closed_low else '>'} {self.low:g}"
        if value > self.high:
            return f"must be <= {self.high:g}"
        return None

    def check(self, value: float, where: str) -> float:
        if self.violation(value) is not None:
            raise ConfigError(f"{where} must be in {self.text()}, got {value:g}")
        return value


# --------------------------------------------------------------------------- profiles


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top: nested mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_profile(profiles: Mapping[str, Any], name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A named profile merged onto the profile it ``extends`` (recursively; cycles are refused).

    Config files with profiles (ppo.yaml, policy.yaml) let a profile override only what differs from
    another, so a test profile cannot silently drift from the default in the keys it does not mention.
    """
    if name not in profiles:
        raise ConfigError(f"profiles: unknown profile {name!r}; known: {sorted(profiles)}")
    if name in chain:
        raise ConfigError(f"profiles.{name}.extends: cycle {' -> '.join([*chain, name])}")
    raw = dict(mapping(profiles[name], f"profiles.{name}"))
    parent = raw.pop("extends", None)
    if parent is None:
        return copy.deepcopy(raw)
    if not isinstance(parent, str):
        raise ConfigError(f"profiles.{name}.extends: expected a profile name, got {parent!r}")
    return deep_merge(resolve_profile(profiles, parent, (*chain, name)), raw)
