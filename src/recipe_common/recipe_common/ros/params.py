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

from recipe_common.config import ConfigError, field_default

T = TypeVar("T")
ALWAYS_ALLOWED = frozenset({"use_sim_time", "start_type_description_service"})


def declare_fields(node: Node, cls: type) -> dict[str, Any]:
    """Declare every field of dataclass ``cls`` as a parameter of ``node`` (dynamic typing: a YAML ``5``
    may fill a float, ``[]`` an empty list); returns the values the node was started with."""
    dynamic = ParameterDescriptor(dynamic_typing=True)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        default = field_default(f)
        value = node.declare_parameter(f.name, default, dynamic).value
        if value is None:  # an empty YAML list arrives untyped
            value = default
        if isinstance(value, array.array | tuple):
            value = list(value)
        values[f.name] = value
    return values


def read_node_config(node: Node, cls: type[T]) -> T:
    """Declare ``cls``'s fields as parameters of ``node`` and return ``cls.from_dict(values)``; parameters
    the node does not have are refused (ROS would ignore them)."""
    names = {f.name for f in dataclasses.fields(cls)}
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    unknown = sorted(set(overrides) - names - ALWAYS_ALLOWED)
    if unknown:
        raise ConfigError(f"node {node.get_name()!r}: unknown parameter(s) {unknown} "
                          f"(allowed: {sorted(names)})")
    values = declare_fields(node, cls)
    try:
        return cls.from_dict(values)  # type: ignore[attr-defined]
    except ConfigError as exc:
        raise ConfigError(f"node {node.get_name()!r}: {exc}") from None
