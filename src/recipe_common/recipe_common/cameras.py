"""The camera table: each D435 of the setup, its simulated twin camera, its ROS topics and intrinsics.

One table, read from the ``cameras:`` section of config/scene.yaml, answers every camera question of the
workspace: the twin renders ``name`` (a MuJoCo camera), the driver's sim backend and the realsense ingest
node publish under ``ros_name`` with realsense2_camera's topic layout, perception and the policy node
subscribe to the same topics, and everybody uses the one ``Intrinsics`` class (ROS CameraInfo
convention: pixel centres at integer coordinates, K = [fx 0 cx; 0 fy cy; 0 0 1]).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import paths
from recipe_common.config import (
    ConfigError,
    as_float,
    as_int,
    as_str,
    as_vector,
    in_file,
    load_yaml,
    mapping,
    require_keys,
)

DEFAULT_NAMESPACE = "/camera"
REQUIRED_CAMERAS = ("head_depth", "third_view")
# The twin's role names: the egocentric depth the policy sees, and the tripod view perception lifts from.
HEAD = "head_depth"
THIRD_VIEW = "third_view"


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, in the ROS CameraInfo convention."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            v = getattr(self, name)
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"intrinsics {name} must be a positive finite number, got {v}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

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

    @classmethod
    def from_k(cls, k: np.ndarray | list[float], width: int, height: int) -> Intrinsics:
        """From a CameraInfo K (9 entries row-major, or 3x3)."""
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(width=int(width), height=int(height), fx=float(k[0, 0]), fy=float(k[1, 1]),
                   cx=float(k[0, 2]), cy=float(k[1, 2]))

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> Intrinsics:
        missing = [k for k in ("width", "height", "fx", "fy", "cx", "cy") if k not in info]
        if missing:
            raise ValueError(f"camera_info is missing {missing}")
        return cls(width=int(info["width"]), height=int(info["height"]), fx=float(info["fx"]),
                   fy=float(info["fy"]), cx=float(info["cx"]), cy=float(info["cy"]))

    def as_dict(self) -> dict[str, float | int]:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy, "cx": self.cx,
                "cy": self.cy}

    def k(self) -> list[float]:
        """CameraInfo K, row-major (9)."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def p(self) -> list[float]:
        """CameraInfo P of a rectified monocular stream, row-major (12)."""
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same field of view at another resolution (pixel centres kept at integer coordinates)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(width=width, height=height, fx=self.fx * sx, fy=self.fy * sy,
                          cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5)


@dataclass(frozen=True)
class CameraConfig:
    """One camera of the setup: the twin's MuJoCo camera ``name`` and the D435 published as ``ros_name``."""

    name: str
    ros_name: str
    parent: str  # body name, or "world"
    pos: np.ndarray  # (3,) in the parent frame
    lookat: np.ndarray  # (3,) point in the parent frame
    stream: Intrinsics
    frame_id: str
    policy_image: tuple[int, int] | None  # (width, height)

    @property
    def fovy_deg(self) -> float:
        return self.stream.fovy_deg

    def rotation(self) -> np.ndarray:
        """Camera axes in the parent frame, MuJoCo convention: columns right, up, backward (sees along -z)."""
        return look_at_rotation(self.pos, self.lookat)

    def topics(self, namespace: str = DEFAULT_NAMESPACE) -> CameraTopics:
        return CameraTopics.of(self.ros_name, namespace)


@dataclass(frozen=True)
class CameraTopics:
    """realsense2_camera's topic names for a camera called ``ros_name`` under ``namespace``."""

    depth: str
    depth_info: str
    color: str
    color_info: str
    aligned_depth: str
    aligned_depth_info: str

    @classmethod
    def of(cls, ros_name: str, namespace: str = DEFAULT_NAMESPACE) -> CameraTopics:
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        base = f"{ns}/{ros_name}"
        return cls(depth=f"{base}/depth/image_rect_raw", depth_info=f"{base}/depth/camera_info",
                   color=f"{base}/color/image_raw", color_info=f"{base}/color/camera_info",
                   aligned_depth=f"{base}/aligned_depth_to_color/image_raw",
                   aligned_depth_info=f"{base}/aligned_depth_to_color/camera_info")


def look_at_rotation(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation (3x3, columns right/up/backward) of a camera at ``pos`` looking at ``target``, up = +z."""
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
    return np.column_stack([right, cam_up, -forward])


def parse_intrinsics(raw: Any, where: str) -> Intrinsics:
    """A ``stream:`` block: square pixels and a centred principal point (what MuJoCo renders) are required."""
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


def parse_camera(name: str, raw: Any) -> CameraConfig:
    where = f"cameras.{name}"
    require_keys(raw, where, {"parent", "pos", "lookat", "stream", "frame_id", "ros_name"}, {"policy_image"})
    policy = None
    if "policy_image" in raw:
        require_keys(raw["policy_image"], f"{where}.policy_image", {"width", "height"})
        policy = (as_int(raw["policy_image"]["width"], f"{where}.policy_image.width", minimum=1),
                  as_int(raw["policy_image"]["height"], f"{where}.policy_image.height", minimum=1))
    cam = CameraConfig(
        name=name,
        ros_name=as_str(raw["ros_name"], f"{where}.ros_name", nonempty=True),
        parent=as_str(raw["parent"], f"{where}.parent", nonempty=True),
        pos=as_vector(raw["pos"], f"{where}.pos", 3),
        lookat=as_vector(raw["lookat"], f"{where}.lookat", 3),
        stream=parse_intrinsics(raw["stream"], f"{where}.stream"),
        frame_id=as_str(raw["frame_id"], f"{where}.frame_id", nonempty=True),
        policy_image=policy,
    )
    cam.rotation()  # validates the look direction
    return cam


def parse_cameras(raw: Any) -> dict[str, CameraConfig]:
    """The ``cameras:`` section: name -> camera; both roles must be present and ROS names unique."""
    cams = mapping(raw, "cameras")
    for required in REQUIRED_CAMERAS:
        if required not in cams:
            raise ConfigError(f"cameras.{required}: missing (required: {', '.join(REQUIRED_CAMERAS)})")
    out = {str(n): parse_camera(str(n), c) for n, c in cams.items()}
    ros_names = [c.ros_name for c in out.values()]
    if len(set(ros_names)) != len(ros_names):
        raise ConfigError(f"cameras: ros_name must be unique, got {ros_names}")
    return out


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, CameraConfig]:
    data = load_yaml(path)
    try:
        return parse_cameras(data.get("cameras"))
    except ConfigError as exc:
        raise in_file(path, exc) from None


def camera_table(path: str | Path | None = None) -> dict[str, CameraConfig]:
    """The cameras of config/scene.yaml (or ``path``), keyed by the twin's camera name (cached)."""
    return _load(str(Path(path) if path is not None else paths.config_path("scene.yaml")))


def by_ros_name(ros_name: str, path: str | Path | None = None) -> CameraConfig:
    table = camera_table(path)
    for cam in table.values():
        if cam.ros_name == ros_name:
            return cam
    raise KeyError(f"no camera published as {ros_name!r}; have {sorted(c.ros_name for c in table.values())}")
