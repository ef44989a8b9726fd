"""Scripted side-grasp shapes (config/grasps.yaml): where the palm goes beside an object, how the hand closes.

One file holds every grasp the scripts use, so the demonstrator, the init-state play and the benchmarks
grasp the same way, and a user can tune a grasp for their own object without touching code.
Normalized hand values follow ``robot_spec`` (0 = open, 1 = closed), in ``HAND_ACTUATED_SUFFIXES`` order
once parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec
from recipe_common.config import as_float, check_keys, load_yaml
from recipe_common.paths import config_path

FORMAT = "recipe_sim/grasps/v1"
CONFIG_FILE = "grasps.yaml"
_GRASP_KEYS = ("palm_offset", "palm_roll", "palm_yaw", "preshape", "closure")
_APPROACH_KEYS = ("pregrasp", "raise_first")  # optional: how the hand comes to the grasp


@dataclass(frozen=True)
class SideGrasp:
    """A side grasp for the left hand; ``offset`` and ``rotation`` mirror it for the right."""

    name: str
    palm_offset: np.ndarray  # (3,) palm minus object centre, m
    palm_roll: float  # rad about world x on top of the ready orientation
    palm_yaw: float  # rad about world z, after the roll
    preshape: np.ndarray  # (6,) normalized hand targets during the reach
    closure: np.ndarray  # (6,) normalized hand targets of the closed grasp
    # Where the palm waits before the reach (palm minus grasp pose, left hand, m); None: the expert's default.
    pregrasp: np.ndarray | None = None
    # Before anything else the palm rises this far (m) straight up from where it starts, in the ready
    # orientation, so that it turns into the grasp orientation above the object; 0: no rise.
    raise_first: float = 0.0

    def offset(self, side: str) -> np.ndarray:
        return self.palm_offset * np.array([1.0, 1.0 if side == "left" else -1.0, 1.0])

    def rotation(self, side: str) -> np.ndarray:
        """(3, 3) world rotation applied to the ready palm orientation (mirrored for the right hand)."""
        sgn = 1.0 if side == "left" else -1.0
        r, y = sgn * self.palm_roll, sgn * self.palm_yaw
        rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(r), -np.sin(r)], [0.0, np.sin(r), np.cos(r)]])
        rz = np.array([[np.cos(y), -np.sin(y), 0.0], [np.sin(y), np.cos(y), 0.0], [0.0, 0.0, 1.0]])
        return rz @ rx

    def with_finger_closure(self, closure: float) -> SideGrasp:
        """The same grasp with the four fingers closed to ``closure`` (the thumb keeps its shape)."""
        c = self.closure.copy()
        c[2:] = float(np.clip(closure, 0.0, 1.0))
        return replace(self, closure=c)


@dataclass(frozen=True)
class GraspCatalog:
    default: str
    grasps: dict[str, SideGrasp]
    objects: dict[str, str] = field(default_factory=dict)  # catalog object -> grasp name (others: default)
    # An env holding exactly one of these sets of objects grasps every one of them with the set's grasp.
    object_sets: tuple[tuple[frozenset[str], str], ...] = ()

    def for_object(self, obj: str) -> SideGrasp:
        """The grasp config/grasps.yaml assigns to a catalog object (the default grasp if none)."""
        return self.get(self.objects.get(obj))

    def for_objects(self, objs: list[str] | tuple[str, ...]) -> list[SideGrasp]:
        """One grasp per object of an env holding ``objs``: the set's grasp if ``object_sets`` names exactly
        these objects, else each object's own. A policy that cannot tell its objects apart (a specialist
        sees positions, not shapes) can only clone an expert that grasps them all the same way."""
        key = frozenset(objs)
        for members, name in self.object_sets:
            if members == key:
                return [self.get(name) for _ in objs]
        return [self.for_object(o) for o in objs]

    def get(self, name: str | None = None) -> SideGrasp:
        """The named grasp, or the default one when ``name`` is None."""
        name = self.default if name is None else name
        try:
            return self.grasps[name]
        except KeyError:
            known = sorted(self.grasps)
            raise ValueError(f"unknown grasp {name!r}; config/{CONFIG_FILE} has {known}") from None


def _hand_values(raw: Any, where: str, required: bool) -> np.ndarray:
    joints = robot_spec.HAND_ACTUATED_SUFFIXES
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping of hand joint -> normalized value, got {raw!r}")
    check_keys(raw, joints, where, required=joints if required else ())
    return np.array([as_float(raw.get(j, 0.0), f"{where}.{j}", 0.0, 1.0) for j in joints])


def _xyz(raw: Any, where: str) -> np.ndarray:
    if not isinstance(raw, list | tuple) or len(raw) != 3:
        raise ValueError(f"{where} must be [x, y, z] in metres, got {raw!r}")
    return np.array([as_float(v, f"{where}[{i}]", -0.3, 0.3) for i, v in enumerate(raw)])


def parse_grasp(name: str, raw: Any) -> SideGrasp:
    where = f"grasps.{name}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping, got {raw!r}")
    check_keys(raw, (*_GRASP_KEYS, *_APPROACH_KEYS), where, required=_GRASP_KEYS)
    pregrasp = None if raw.get("pregrasp") is None else _xyz(raw["pregrasp"], f"{where}.pregrasp")
    return SideGrasp(
        name=name,
        palm_offset=_xyz(raw["palm_offset"], f"{where}.palm_offset"),
        palm_roll=as_float(raw["palm_roll"], f"{where}.palm_roll", -np.pi, np.pi),
        palm_yaw=as_float(raw["palm_yaw"], f"{where}.palm_yaw", -np.pi, np.pi),
        preshape=_hand_values(raw["preshape"] or {}, f"{where}.preshape", required=False),
        closure=_hand_values(raw["closure"], f"{where}.closure", required=True),
        pregrasp=pregrasp,
        raise_first=as_float(raw.get("raise_first", 0.0), f"{where}.raise_first", 0.0, 0.3),
    )


def load_grasps(path: str | Path | None = None) -> GraspCatalog:
    """Read and validate config/grasps.yaml (or ``path``); errors name the file and the bad key."""
    path = config_path(CONFIG_FILE) if path is None else Path(path)
    data = load_yaml(path, FORMAT)
    try:
        check_keys(data, ("format", "default", "grasps", "objects", "object_sets"), "grasps.yaml",
                   required=("default", "grasps"))
        grasps = data["grasps"]
        if not isinstance(grasps, Mapping) or not grasps:
            raise ValueError("grasps must be a non-empty mapping of name -> grasp")
        parsed = {str(n): parse_grasp(str(n), raw) for n, raw in grasps.items()}
        default = data["default"]
        if default not in parsed:
            raise ValueError(f"default: {default!r} is not one of the grasps {sorted(parsed)}")
        objects = data.get("objects") or {}
        if not isinstance(objects, Mapping):
            raise ValueError(f"objects must be a mapping of catalog object -> grasp name, got {objects!r}")
        for obj, name in objects.items():
            if name not in parsed:
                raise ValueError(f"objects.{obj}: {name!r} is not one of the grasps {sorted(parsed)}")
        sets = data.get("object_sets") or []
        if not isinstance(sets, list):
            raise ValueError(f"object_sets must be a list of {{objects: [...], grasp: name}}, got {sets!r}")
        object_sets = []
        for k, entry in enumerate(sets):
            where = f"object_sets[{k}]"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} must be a mapping {{objects: [...], grasp: name}}, got {entry!r}")
            check_keys(entry, ("objects", "grasp"), where, required=("objects", "grasp"))
            members = entry["objects"]
            if not isinstance(members, list) or not members or not all(isinstance(o, str) for o in members):
                raise ValueError(f"{where}.objects must be a non-empty list of object names, got {members!r}")
            if entry["grasp"] not in parsed:
                raise ValueError(f"{where}.grasp: {entry['grasp']!r} is not one of the grasps "
                                 f"{sorted(parsed)}")
            object_sets.append((frozenset(members), str(entry["grasp"])))
        return GraspCatalog(str(default), parsed, {str(k): str(v) for k, v in objects.items()},
                            tuple(object_sets))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
