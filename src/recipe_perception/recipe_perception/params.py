"""Flat dataclass configurations that are also ROS parameters (the perception and realsense nodes).

One place for what both need: a field's default, coercing a value to the default's type with
recipe_common.config's checks (errors name ``<node>.<key>``), ; declaring every field as a parameter of a
node is recipe_common.ros.params.declare_fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from recipe_common.config import (
    as_bool,
    as_float,
    as_int,
    as_list,
    as_str,
    as_vector,
    check_keys,
    field_default,
)


def coerce(where: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default`` (bool, int, float, str, list of floats (fixed length) or str)."""
    if isinstance(default, bool):
        return as_bool(value, where)
    if isinstance(default, int):
        return as_int(value, where)
    if isinstance(default, float):
        return as_float(value, where)
    if isinstance(default, str):
        return as_str(value, where)
    if isinstance(default, list):
        value = list(value) if isinstance(value, tuple) else value
        if default and isinstance(default[0], float):
            return [float(v) for v in as_vector(value, where, len(default))]
        return as_list(value, where, str)
    raise TypeError(f"{where}: unsupported config type {type(default).__name__}")  # pragma: no cover


def coerce_all(cls: type, d: Any, node_name: str) -> dict[str, Any]:
    """The mapping ``d`` checked against ``cls``'s fields (unknown keys are errors) and coerced."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(d, list(fields), node_name)
    return {k: coerce(f"{node_name}.{k}", v, field_default(fields[k])) for k, v in d.items()}
