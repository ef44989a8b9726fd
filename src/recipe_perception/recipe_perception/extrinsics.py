"""Where a camera is in the robot base frame: from the twin's scene, or from a calibration file.

Perception lifts pixels into ``base_link`` (recipe_common.frames.BASE) with a 4x4 transform of the camera's
*optical* frame (x right, y down, z forward, the ROS/OpenCV convention) expressed in ``base_link``.

Two sources, one type:

* ``scene``: the twin's camera pose of config/scene.yaml (``cameras.<name>.pos/lookat``, world frame),
  moved into ``base_link`` with recipe_common.frames. Only cameras mounted on the world (the tripod)
  have a pose there without the robot model.
* a calibration YAML (``format: recipe_perception/extrinsics/v1``) written by
  ``recipe_perception.calibration`` from a ChArUco board or hand-eye poses, with the reprojection error.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from recipe_common import frames
from recipe_common.cameras import CameraConfig, Intrinsics, camera_table
from recipe_common.config import (
    ConfigError,
    as_float,
    as_int,
    as_str,
    as_vector,
    in_file,
    load_yaml,
    require_keys,
)

FORMAT = "recipe_perception/extrinsics/v1"
SCENE = "scene"  # the extrinsics source naming config/scene.yaml
# MuJoCo cameras look along -z with +y up; the optical frame looks along +z with +y down.
MJ_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class CameraExtrinsics:
    """Pose of a camera's optical frame in ``parent_frame`` (normally base_link)."""

    camera: str
    cam_to_parent: np.ndarray  # (4, 4)
    parent_frame: str = frames.BASE
    child_frame: str = ""
    method: str = SCENE
    reprojection_error_px: float | None = None
    views: int = 0
    intrinsics: Intrinsics | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = np.asarray(self.cam_to_parent, dtype=np.float64)
        if t.shape != (4, 4) or not np.all(np.isfinite(t)):
            raise ValueError(f"cam_to_parent must be a finite 4x4 transform, got shape {t.shape}")
        r = t[:3, :3]
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueError("cam_to_parent's rotation part is not a proper rotation matrix")

    @property
    def rotation(self) -> np.ndarray:
        return np.asarray(self.cam_to_parent)[:3, :3]

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.cam_to_parent)[:3, 3]

    def to_parent(self, points_cam: np.ndarray) -> np.ndarray:
        """Points (..., 3) in the optical frame -> the parent frame."""
        return np.asarray(points_cam) @ self.rotation.T + self.position

    def from_parent(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in the parent frame -> the optical frame."""
        return (np.asarray(points) - self.position) @ self.rotation

    def to_dict(self) -> dict[str, Any]:
        q = Rotation.from_matrix(self.rotation).as_quat()  # x, y, z, w
        out: dict[str, Any] = {
            "format": FORMAT,
            "camera": self.camera,
            "parent_frame": self.parent_frame,
            "child_frame": self.child_frame,
            "translation": [round(float(v), 6) for v in self.position],
            "rotation_xyzw": [round(float(v), 8) for v in q],
            "method": self.method,
            "reprojection_error_px": None
            if self.reprojection_error_px is None
            else round(float(self.reprojection_error_px), 4),
            "views": int(self.views),
        }
        if self.intrinsics is not None:
            out["intrinsics"] = self.intrinsics.as_dict()
        out["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if self.notes:
            out["notes"] = dict(self.notes)
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        header = (
            "# Camera extrinsics: pose of the camera's optical frame (x right, y down, z forward) in "
            f"{self.parent_frame}.\n# Written by recipe_perception.calibration; read by the perception "
            "node (-p extrinsics:=<this file>).\n"
        )
        tmp.write_text(header + yaml.safe_dump(self.to_dict(), sort_keys=False))
        tmp.replace(path)
        return path


def transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = translation
    return t


def optical_rotation(cam: CameraConfig) -> np.ndarray:
    """The optical frame's axes in the camera's parent frame (columns x right, y down, z forward)."""
    return cam.rotation() @ MJ_TO_OPTICAL


def from_scene(camera: str, scene_path: str | Path | None = None) -> CameraExtrinsics:
    """The twin's camera ``camera`` (a name of the camera table) in base_link, from config/scene.yaml."""
    table = camera_table(scene_path)
    if camera not in table:
        raise ConfigError(f"extrinsics: no camera {camera!r} in the camera table; have {sorted(table)}")
    cam = table[camera]
    if cam.parent != "world":
        raise ConfigError(
            f"extrinsics: camera {camera!r} is mounted on the robot body {cam.parent!r}; its pose in "
            f"{frames.BASE} depends on the robot's kinematics: calibrate it and pass the file"
        )
    pos = frames.from_world(cam.pos, frames.BASE, scene_path)
    return CameraExtrinsics(
        camera=camera,
        cam_to_parent=transform(optical_rotation(cam), pos),
        child_frame=cam.frame_id,
        method=SCENE,
        intrinsics=cam.stream,
    )


def parse(data: dict[str, Any]) -> CameraExtrinsics:
    require_keys(
        data,
        "extrinsics",
        {"format", "camera", "parent_frame", "translation", "rotation_xyzw"},
        {"child_frame", "method", "reprojection_error_px", "views", "intrinsics", "created", "notes"},
    )
    if data["format"] != FORMAT:
        raise ConfigError(f"format: expected {FORMAT!r}, got {data['format']!r}")
    parent = as_str(data["parent_frame"], "parent_frame", nonempty=True)
    if parent != frames.BASE:
        raise ConfigError(f"parent_frame: perception lifts into {frames.BASE!r}, got {parent!r}")
    q = as_vector(data["rotation_xyzw"], "rotation_xyzw", 4)
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > 1e-3:
        raise ConfigError(f"rotation_xyzw: must be a unit quaternion, got norm {norm:.6f}")
    rot = Rotation.from_quat(q / norm).as_matrix()
    err = data.get("reprojection_error_px")
    intr = None
    if data.get("intrinsics") is not None:
        raw = data["intrinsics"]
        require_keys(raw, "intrinsics", {"width", "height", "fx", "fy", "cx", "cy"})
        intr = Intrinsics(
            width=as_int(raw["width"], "intrinsics.width", minimum=1),
            height=as_int(raw["height"], "intrinsics.height", minimum=1),
            fx=as_float(raw["fx"], "intrinsics.fx", positive=True),
            fy=as_float(raw["fy"], "intrinsics.fy", positive=True),
            cx=as_float(raw["cx"], "intrinsics.cx"),
            cy=as_float(raw["cy"], "intrinsics.cy"),
        )
    return CameraExtrinsics(
        camera=as_str(data["camera"], "camera", nonempty=True),
        cam_to_parent=transform(rot, as_vector(data["translation"], "translation", 3)),
        parent_frame=parent,
        child_frame=as_str(data.get("child_frame", ""), "child_frame"),
        method=as_str(data.get("method", "unknown"), "method"),
        reprojection_error_px=None
        if err is None
        else as_float(err, "reprojection_error_px", nonnegative=True),
        views=as_int(data.get("views", 0), "views", minimum=0),
        intrinsics=intr,
        notes=dict(data.get("notes") or {}),
    )


def load(path: str | Path) -> CameraExtrinsics:
    """Read a calibration YAML; every problem names the file and the key."""
    data = load_yaml(path)
    try:
        return parse(data)
    except ConfigError as exc:
        raise in_file(path, exc) from None


def resolve(source: str, camera: str) -> CameraExtrinsics:
    """``scene`` (the twin's configured pose) or a calibration file path, for ``camera``."""
    if source == SCENE:
        return from_scene(camera)
    ext = load(source)
    if ext.camera != camera:
        raise ConfigError(
            f"{source}: camera: the file calibrates {ext.camera!r}, perception needs {camera!r}"
        )
    return ext


def pose_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(translation error m, rotation error deg) between two 4x4 transforms."""
    dt = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    r = a[:3, :3].T @ b[:3, :3]
    ang = float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))
    return dt, ang
