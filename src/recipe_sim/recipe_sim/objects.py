"""The object catalog: primitive shapes with randomization ranges, and the divide-and-conquer groupings.

One YAML file (config/objects.yaml) defines every object once, so the trainer, the sim twin and the
distillation split the same objects the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_common import config, paths
from recipe_common.config import ConfigError, as_vector
from recipe_sim import stickers

FORMAT = "recipe_sim/objects/v1"
SHAPE_SIZE_LEN = {"box": 3, "cylinder": 2, "sphere": 1}
STICKER_PLACEMENTS = stickers.PLACEMENTS
# Groupings every catalog must define; each must split the "all" objects into disjoint groups.
PARTITION_GROUPINGS = ("all", "shape", "mix")
DEFAULT_MASS_RANGE = (0.03, 0.1)
DEFAULT_FRICTION_RANGE = (0.5, 1.5)


@dataclass(frozen=True)
class ObjectSpec:
    """A primitive object. ``size`` is the MuJoCo geom size in metres (see module config docs)."""

    name: str
    shape: str
    size: tuple[float, ...]
    mass_range: tuple[float, float] = DEFAULT_MASS_RANGE
    friction_range: tuple[float, float] = DEFAULT_FRICTION_RANGE
    sticker_placement: str = "side_centres"
    rgba: tuple[float, float, float, float] = (0.85, 0.35, 0.2, 1.0)

    def __post_init__(self) -> None:
        where = f"object {self.name!r}"
        if self.shape not in SHAPE_SIZE_LEN:
            raise ConfigError(f"{where}: shape {self.shape!r} is not one of {sorted(SHAPE_SIZE_LEN)}")
        if len(self.size) != SHAPE_SIZE_LEN[self.shape]:
            raise ConfigError(f"{where}: a {self.shape} needs {SHAPE_SIZE_LEN[self.shape]} size values, "
                              f"got {list(self.size)}")
        if any(not (s > 0) for s in self.size):  # also rejects NaN
            raise ConfigError(f"{where}: sizes must be positive, got {list(self.size)}")
        for label, (lo, hi) in (("mass_range", self.mass_range), ("friction_range", self.friction_range)):
            if not (0 < lo <= hi):
                raise ConfigError(f"{where}: {label} must satisfy 0 < low <= high, got [{lo}, {hi}]")
        if self.sticker_placement not in STICKER_PLACEMENTS:
            raise ConfigError(f"{where}: sticker_placement {self.sticker_placement!r} is not one of "
                              f"{list(STICKER_PLACEMENTS)}")

    @property
    def resting_height(self) -> float:
        """Height of the centre above the support plane when standing upright."""
        return self.size[0] if self.shape == "sphere" else self.size[-1]

    @property
    def nominal_mass(self) -> float:
        return 0.5 * (self.mass_range[0] + self.mass_range[1])

    @property
    def nominal_friction(self) -> float:
        return 0.5 * (self.friction_range[0] + self.friction_range[1])


@dataclass(frozen=True)
class Catalog:
    objects: dict[str, ObjectSpec]
    groupings: dict[str, list[list[str]]]

    def group(self, name: str) -> list[list[str]]:
        """Object-name groups of a grouping: "all", "shape", "mix", "single", "single:<object>", or a task."""
        if name == "single":
            return [[n] for n in self.groupings["all"][0]]
        if name.startswith("single:"):
            obj = name.split(":", 1)[1]
            if obj not in self.objects:
                raise KeyError(f"grouping {name!r}: unknown object {obj!r}; known: {sorted(self.objects)}")
            return [[obj]]
        if name not in self.groupings:
            known = sorted([*self.groupings, "single", "single:<object>"])
            raise KeyError(f"unknown grouping {name!r}; known: {known}")
        return [list(g) for g in self.groupings[name]]

    def specs(self, names: list[str]) -> list[ObjectSpec]:
        return [self.objects[n] for n in names]


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate the catalog (default: config/objects.yaml)."""
    path = Path(path) if path is not None else paths.config_dir() / "objects.yaml"
    try:
        return catalog_from_dict(config.load_yaml(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def catalog_from_dict(data: Mapping[str, Any]) -> Catalog:
    config.require_keys(dict(data), "catalog", {"format", "objects", "groupings"}, {"defaults"})
    if data["format"] != FORMAT:
        raise ConfigError(f"format: expected {FORMAT!r}, got {data['format']!r}")
    defaults = data.get("defaults") or {}
    config.require_keys(defaults, "defaults", set(), {"mass_range", "friction_range"})
    objects: dict[str, ObjectSpec] = {}
    raw_objects = data["objects"]
    if not isinstance(raw_objects, Mapping) or not raw_objects:
        raise ConfigError("objects: expected a non-empty mapping of name -> object")
    for name, raw in raw_objects.items():
        objects[str(name)] = _object_from_dict(str(name), raw, defaults)
    groupings = _validate_groupings(data["groupings"], objects)
    return Catalog(objects=objects, groupings=groupings)


def _object_from_dict(name: str, raw: Any, defaults: Mapping[str, Any]) -> ObjectSpec:
    where = f"objects.{name}"
    config.require_keys(raw, where, {"shape", "size", "sticker_placement"},
                        {"mass_range", "friction_range", "rgba"})
    shape = raw["shape"]
    if shape not in SHAPE_SIZE_LEN:
        raise ConfigError(f"{where}.shape: {shape!r} is not one of {sorted(SHAPE_SIZE_LEN)}")
    size = tuple(as_vector(raw["size"], f"{where}.size", SHAPE_SIZE_LEN[shape]).tolist())
    kwargs: dict[str, Any] = {}
    for key in ("mass_range", "friction_range"):
        value = raw.get(key, defaults.get(key))
        if value is not None:
            kwargs[key] = tuple(as_vector(value, f"{where}.{key}", 2).tolist())
    if "rgba" in raw:
        kwargs["rgba"] = tuple(as_vector(raw["rgba"], f"{where}.rgba", 4).tolist())
    return ObjectSpec(name=name, shape=shape, size=size, sticker_placement=raw["sticker_placement"], **kwargs)


def _validate_groupings(raw: Any, objects: Mapping[str, ObjectSpec]) -> dict[str, list[list[str]]]:
    if not isinstance(raw, Mapping):
        raise ConfigError("groupings: expected a mapping of name -> list of groups")
    out: dict[str, list[list[str]]] = {}
    for gname, groups in raw.items():
        where = f"groupings.{gname}"
        if gname == "single" or str(gname).startswith("single:"):
            raise ConfigError(f"{where}: 'single' groupings are derived from 'all'; do not define them")
        if not isinstance(groups, list) or not groups or not all(isinstance(g, list) and g for g in groups):
            raise ConfigError(f"{where}: expected a non-empty list of non-empty lists of object names")
        for g in groups:
            for n in g:
                if n not in objects:
                    raise ConfigError(f"{where}: unknown object {n!r}")
        out[str(gname)] = [[str(n) for n in g] for g in groups]
    for gname in PARTITION_GROUPINGS:
        if gname not in out:
            raise ConfigError(f"groupings.{gname}: missing (required: {list(PARTITION_GROUPINGS)})")
    if len(out["all"]) != 1:
        raise ConfigError(f"groupings.all: must be exactly one group, got {len(out['all'])}")
    all_objects = out["all"][0]
    if len(set(all_objects)) != len(all_objects):
        raise ConfigError("groupings.all: lists an object twice")
    for gname in PARTITION_GROUPINGS[1:]:
        flat = [n for g in out[gname] for n in g]
        if sorted(flat) != sorted(all_objects):
            missing = sorted(set(all_objects) - set(flat))
            extra = sorted(set(flat) - set(all_objects))
            dup = sorted({n for n in flat if flat.count(n) > 1})
            raise ConfigError(f"groupings.{gname}: must partition 'all' (missing {missing}, not in 'all' "
                              f"{extra}, repeated {dup})")
    return out
