"""Scene configuration (config/scene.yaml): table, robot base, object spawn, lights and the D435 cameras.

Camera intrinsics are validated against what MuJoCo can render (square pixels, centred principal point)
so that ``camera_info`` published by the twin is exactly the projection of the rendered image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipe_sim import assets
from recipe_sim.assets import ConfigError, as_float, as_int, as_vector, require_keys
from recipe_sim.model.capsules import mat_to_quat

FORMAT = "recipe_sim/scene/v1"


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in the ROS CameraInfo convention (pixel centres at integer coordinates)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def fovy_deg(self) -> float:
        return math.degrees(2.0 * math.atan(0.5 * self.height / self.fy))

    @property
    def fovx_deg(self) -> float:
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))

    @classmethod
    def from_fovy(cls, fovy_deg: float, width: int, height: int) -> Intrinsics:
        """What MuJoCo renders for a camera with vertical FOV ``fovy_deg`` into a width x height image."""
        f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
        return cls(width=width, height=height, fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)

    def as_dict(self) -> dict[str, float | int]:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy, "cx": self.cx,
                "cy": self.cy}


@dataclass(frozen=True)
class CameraConfig:
    name: str
    parent: str  # body name, or "world"
    pos: np.ndarray  # (3,) in the parent frame
    lookat: np.ndarray  # (3,) point in the parent frame
    stream: Intrinsics
    frame_id: str
    policy_image: tuple[int, int] | None  # (width, height)

    @property
    def fovy_deg(self) -> float:
        return self.stream.fovy_deg

    def quat(self) -> np.ndarray:
        """Camera orientation in the parent frame (MuJoCo cameras look along -z with +y up)."""
        return look_at_quat(self.pos, self.lookat)


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


def look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at ``pos`` looking at ``target``, image up = +z side."""
    up = np.array([0.0, 0.0, 1.0])
    forward = np.asarray(target, dtype=np.float64) - np.asarray(pos, dtype=np.float64)
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ConfigError("camera lookat point coincides with its position")
    forward /= norm
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:
        raise ConfigError("camera looks straight along the up axis; cannot define its roll")
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    return mat_to_quat(np.column_stack([right, cam_up, -forward]))


def _intrinsics(raw: Any, where: str) -> Intrinsics:
    require_keys(raw, where, {"width", "height", "fx", "fy", "cx", "cy"})
    k = Intrinsics(
        width=as_int(raw["width"], f"{where}.width", minimum=1),
        height=as_int(raw["height"], f"{where}.height", minimum=1),
        fx=as_float(raw["fx"], f"{where}.fx", positive=True),
        fy=as_float(raw["fy"], f"{where}.fy", positive=True),
        cx=as_float(raw["cx"], f"{where}.cx"),
        cy=as_float(raw["cy"], f"{where}.cy"),
    )
    if abs(k.fx - k.fy) > 1e-3 * k.fy:
        raise ConfigError(f"{where}: fx ({k.fx}) must equal fy ({k.fy}): MuJoCo renders square pixels")
    if abs(k.cx - (k.width - 1) / 2) > 1.0 or abs(k.cy - (k.height - 1) / 2) > 1.0:
        raise ConfigError(f"{where}: principal point ({k.cx}, {k.cy}) must be the image centre "
                          f"({(k.width - 1) / 2}, {(k.height - 1) / 2}): MuJoCo renders a centred projection")
    return k


def _camera(name: str, raw: Any) -> CameraConfig:
    where = f"cameras.{name}"
    require_keys(raw, where, {"parent", "pos", "lookat", "stream", "frame_id"}, {"policy_image"})
    policy = None
    if "policy_image" in raw:
        require_keys(raw["policy_image"], f"{where}.policy_image", {"width", "height"})
        policy = (as_int(raw["policy_image"]["width"], f"{where}.policy_image.width", minimum=1),
                  as_int(raw["policy_image"]["height"], f"{where}.policy_image.height", minimum=1))
    cam = CameraConfig(
        name=name,
        parent=str(raw["parent"]),
        pos=as_vector(raw["pos"], f"{where}.pos", 3),
        lookat=as_vector(raw["lookat"], f"{where}.lookat", 3),
        stream=_intrinsics(raw["stream"], f"{where}.stream"),
        frame_id=str(raw["frame_id"]),
        policy_image=policy,
    )
    cam.quat()  # validates the look direction
    return cam


def scene_from_dict(data: dict[str, Any]) -> SceneConfig:
    require_keys(data, "scene", {"format", "robot", "table", "object_spawn", "cameras"}, {"floor", "lights"})
    if data["format"] != FORMAT:
        raise ConfigError(f"format: expected {FORMAT!r}, got {data['format']!r}")
    require_keys(data["robot"], "robot", {"base_pos"})
    table = data["table"]
    require_keys(table, "table", {"top_height", "center_xy", "half_size"}, {"friction"})
    spawn = data["object_spawn"]
    require_keys(spawn, "object_spawn", {"xy"}, {"yaw"})
    cams = data["cameras"]
    if not isinstance(cams, dict):
        raise ConfigError("cameras: expected a mapping of name -> camera")
    for required in ("head_depth", "third_view"):
        if required not in cams:
            raise ConfigError(f"cameras.{required}: missing (required cameras: head_depth, third_view)")
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
        base_pos=as_vector(data["robot"]["base_pos"], "robot.base_pos", 3),
        table_top_height=as_float(table["top_height"], "table.top_height", positive=True),
        table_center_xy=as_vector(table["center_xy"], "table.center_xy", 2),
        table_half_size=half,
        table_friction=as_float(table.get("friction", 1.0), "table.friction", positive=True),
        floor=bool(data.get("floor", True)),
        spawn_xy=as_vector(spawn["xy"], "object_spawn.xy", 2),
        spawn_yaw=as_float(spawn.get("yaw", 0.0), "object_spawn.yaw"),
        cameras={str(n): _camera(str(n), c) for n, c in cams.items()},
        lights=tuple(lights),
    )


@functools.lru_cache(maxsize=4)
def _load(path: str) -> SceneConfig:
    try:
        return scene_from_dict(assets.load_yaml(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_scene(path: str | Path | None = None) -> SceneConfig:
    """Read and validate config/scene.yaml (cached per path)."""
    return _load(str(Path(path) if path is not None else assets.config_dir() / "scene.yaml"))
