"""Coordinate frames shared by the twin, perception and the policy.

``world``: the sim's frame (x forward from the robot, y to its left, z up; the floor at z = 0). Policies
take positions in it, because that is where they were trained. ``base_link``: the GR1's pelvis (the URDF
base), where perception on the real robot expresses the object (``ObjectState.header.frame_id``). The
robot stands at ``robot.base_pos`` of config/scene.yaml, axes aligned with the world, so the two differ
by that translation alone.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import paths
from recipe_common.config import ConfigError, as_vector, in_file, load_yaml, require_keys

WORLD = "world"
BASE = "base_link"


def parse_base_pos(robot: Any) -> np.ndarray:
    """The ``robot:`` section of config/scene.yaml -> base position in the world (3,)."""
    require_keys(robot, "robot", {"base_pos"})
    return as_vector(robot["base_pos"], "robot.base_pos", 3)


@functools.lru_cache(maxsize=4)
def _base_pos(path: str) -> tuple[float, float, float]:
    data = load_yaml(path)
    try:
        return tuple(parse_base_pos(data.get("robot")).tolist())
    except ConfigError as exc:
        raise in_file(path, exc) from None


def base_pos(scene_path: str | Path | None = None) -> np.ndarray:
    """Where the robot base stands in the world (config/scene.yaml ``robot.base_pos``)."""
    return np.array(_base_pos(str(scene_path or paths.config_path("scene.yaml"))))


def to_world(p: np.ndarray, frame: str, scene_path: str | Path | None = None) -> np.ndarray:
    """A position (..., 3) given in ``frame`` (world or base_link) expressed in the world."""
    p = np.asarray(p, dtype=np.float64)
    if frame == WORLD:
        return p
    if frame == BASE:
        return p + base_pos(scene_path)
    raise ValueError(f"unknown frame {frame!r}; expected {WORLD!r} or {BASE!r}")


def from_world(p: np.ndarray, frame: str, scene_path: str | Path | None = None) -> np.ndarray:
    """A world position (..., 3) expressed in ``frame``."""
    p = np.asarray(p, dtype=np.float64)
    if frame == WORLD:
        return p
    if frame == BASE:
        return p - base_pos(scene_path)
    raise ValueError(f"unknown frame {frame!r}; expected {WORLD!r} or {BASE!r}")
