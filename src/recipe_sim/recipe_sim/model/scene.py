"""Scene configuration (config/scene.yaml): table, robot base, object spawn, lights and the D435 cameras.

Camera intrinsics are validated against what MuJoCo can render (square pixels, centred principal point)
so that ``camera_info`` published by the twin is exactly the projection of the rendered image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import config, paths
from recipe_common.cameras import CameraConfig, parse_cameras
from recipe_common.config import ConfigError, as_float, as_vector, require_keys
from recipe_common.frames import parse_base_pos
from recipe_sim.model.capsules import mat_to_quat

FORMAT = "recipe_sim/scene/v1"


@dataclass(frozen=True)
class LightConfig:
    pos: np.ndarray
    dir: np.ndarray
    directional: bool
    diffuse: np.ndarray


@dataclass(frozen=True)
class SceneConfig:
    base_pos: np.ndarray
    table_top_height: float
    table_center_xy: np.ndarray
    table_half_size: np.ndarray
    table_friction: float
    floor: bool
    spawn_xy: np.ndarray
    spawn_yaw: float
    cameras: dict[str, CameraConfig]
    lights: tuple[LightConfig, ...]

    @property
    def table_center(self) -> np.ndarray:
        return np.array([*self.table_center_xy, self.table_top_height - self.table_half_size[2]])


def camera_quat(cam: CameraConfig) -> np.ndarray:
    """Camera orientation in its parent frame (MuJoCo cameras look along -z with +y up)."""
    return mat_to_quat(cam.rotation())


def scene_from_dict(data: dict[str, Any]) -> SceneConfig:
    require_keys(data, "scene", {"format", "robot", "table", "object_spawn", "cameras"}, {"floor", "lights"})
    if data["format"] != FORMAT:
        raise ConfigError(f"format: expected {FORMAT!r}, got {data['format']!r}")
    table = data["table"]
    require_keys(table, "table", {"top_height", "center_xy", "half_size"}, {"friction"})
    spawn = data["object_spawn"]
    require_keys(spawn, "object_spawn", {"xy"}, {"yaw"})
    lights = []
    for i, raw in enumerate(data.get("lights") or []):
        where = f"lights[{i}]"
        require_keys(raw, where, {"pos", "dir"}, {"directional", "diffuse"})
        diffuse = as_vector(raw.get("diffuse", [0.7, 0.7, 0.7]), f"{where}.diffuse", 3)
        lights.append(LightConfig(pos=as_vector(raw["pos"], f"{where}.pos", 3),
                                  dir=as_vector(raw["dir"], f"{where}.dir", 3),
                                  directional=bool(raw.get("directional", True)), diffuse=diffuse))
    half = as_vector(table["half_size"], "table.half_size", 3)
    if np.any(half <= 0):
        raise ConfigError(f"table.half_size: must be positive, got {half.tolist()}")
    return SceneConfig(
        base_pos=parse_base_pos(data["robot"]),
        table_top_height=as_float(table["top_height"], "table.top_height", positive=True),
        table_center_xy=as_vector(table["center_xy"], "table.center_xy", 2),
        table_half_size=half,
        table_friction=as_float(table.get("friction", 1.0), "table.friction", positive=True),
        floor=bool(data.get("floor", True)),
        spawn_xy=as_vector(spawn["xy"], "object_spawn.xy", 2),
        spawn_yaw=as_float(spawn.get("yaw", 0.0), "object_spawn.yaw"),
        cameras=parse_cameras(data["cameras"]),
        lights=tuple(lights),
    )


@functools.lru_cache(maxsize=4)
def _load(path: str) -> SceneConfig:
    try:
        return scene_from_dict(config.load_yaml(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_scene(path: str | Path | None = None) -> SceneConfig:
    """Read and validate config/scene.yaml (cached per path)."""
    return _load(str(Path(path) if path is not None else paths.config_dir() / "scene.yaml"))
