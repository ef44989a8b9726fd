"""A node's configuration from ROS parameters, validated like every config file of the workspace.

Each configurable node describes its parameters once, as a frozen dataclass with defaults and a
``from_dict`` that validates with ``recipe_common.config``; ``read_node_config`` declares those
parameters on the node, refuses parameters the node does not have (a misspelled key in a params file
would otherwise be ignored silently), and returns the validated dataclass.
"""

from __future__ import annotations

import array
import dataclasses
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from recipe_common.config import ConfigError

T = TypeVar("T")
ALWAYS_ALLOWED = frozenset({"use_sim_time", "start_type_description_service"})


def field_defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
        else:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default to be a ROS parameter")
    return out


def read_node_config(node: Node, cls: type[T]) -> T:
    """Declare ``cls``'s fields as parameters of ``node`` and return ``cls.from_dict(values)``."""
    defaults = field_defaults(cls)
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    unknown = sorted(set(overrides) - set(defaults) - ALWAYS_ALLOWED)
    if unknown:
        raise ConfigError(f"node {node.get_name()!r}: unknown parameter(s) {unknown} "
                          f"(allowed: {sorted(defaults)})")
    dynamic = ParameterDescriptor(dynamic_typing=True)
    values: dict[str, Any] = {}
    for name, default in defaults.items():
        value = node.declare_parameter(name, default, dynamic).value
        if value is None:  # an empty YAML list arrives untyped
            value = default
        if isinstance(value, array.array | tuple):
            value = list(value)
        values[name] = value
    try:
        return cls.from_dict(values)  # type: ignore[attr-defined]
    except ConfigError as exc:
        raise ConfigError(f"node {node.get_name()!r}: {exc}") from None
