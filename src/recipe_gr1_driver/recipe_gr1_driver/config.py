"""Driver configuration: one flat, validated parameter set shared by YAML files and ROS parameters.

The same names are ROS parameters of the ``gr1_driver`` node, so ``config/driver.yaml`` has the
``gr1_driver: ros__parameters:`` layout and works with ``--ros-args --params-file``. The node
declares every field below as a parameter and validates the result with ``DriverConfig.from_dict``;
tools and tests read the file with ``load_driver_config``. Errors name the offending key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipe_common import robot_spec
from recipe_common.cameras import DEFAULT_NAMESPACE, CameraTopics, camera_table
from recipe_common.paths import config_path

NODE_NAME = "gr1_driver"
BACKENDS = ("sim", "gr1")


@dataclass(frozen=True)
class DriverConfig:
    backend: str = "sim"
    hand: str = robot_spec.DEFAULT_HAND
    # topics and rates
    command_topic: str = "/joint_commands"
    state_topic: str = "/joint_states"
    estop_topic: str = "/estop"
    estop_service: str = "/estop"
    diagnostics_topic: str = "/diagnostics"
    state_rate_hz: float = 100.0
    control_rate_hz: float = 100.0
    diagnostics_rate_hz: float = 1.0
    # safety (radians, seconds)
    arm_margin: float = 0.05
    hand_margin: float = 0.0
    arm_velocity_scale: float = 0.5
    arm_max_velocity: float = 2.0
    hand_max_velocity: float = 3.0
    max_step: float = 0.05
    watchdog_timeout: float = 0.5
    ramp_time: float = 1.0
    # sim backend
    sim_overlay: str = ""
    sim_object: str = ""
    sim_seed: int = 0
    sim_real_time_factor: float = 1.0
    camera_rate_hz: float = 15.0
    # default: every camera of the table in config/scene.yaml (recipe_common.cameras)
    camera_names: list[str] = field(default_factory=lambda: [c.ros_name for c in camera_table().values()])
    camera_sim_names: list[str] = field(default_factory=lambda: list(camera_table()))
    camera_namespace: str = DEFAULT_NAMESPACE
    camera_width: int = 0  # 0 x 0: the twin's native (D435) stream size
    camera_height: int = 0
    depth_max_m: float = 10.0
    # gr1 hardware backend
    gr1_namespace: str = "gr"
    gr1_server_ip: str = "192.168.6.6"  # the address in fourier-grx-client docs; set yours
    gr1_server_port: int = 7447
    gr1_enable_on_start: bool = False
    gr1_zenoh_listen: list[str] = field(default_factory=list)
    left_hand_ip: str = "192.168.137.19"
    right_hand_ip: str = "192.168.137.39"
    left_hand_ports: list[int] = field(default_factory=lambda: [2333, 2334])
    right_hand_ports: list[int] = field(default_factory=lambda: [2333, 2334])
    hand_full_stroke: float = 10.3
    hand_poll_rate_hz: float = 50.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriverConfig:
        """Build and validate; unknown keys and wrong types raise ValueError naming the key."""
        if not isinstance(d, dict):
            raise ValueError(f"driver config must be a mapping, got {type(d).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown driver config keys: {unknown}")
        values = {k: _coerce(k, v, _field_default(known[k])) for k, v in d.items()}
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: {self.backend!r} is not one of {list(BACKENDS)}")
        if self.hand not in robot_spec.HANDS:
            raise ValueError(f"hand: {self.hand!r} is not one of {sorted(robot_spec.HANDS)}")
        if self.backend == "gr1" and self.hand != "fourier":
            raise ValueError("hand: the gr1 hardware backend supports only the 'fourier' hand (fourier-dhx)")
        for key in ("state_rate_hz", "control_rate_hz", "diagnostics_rate_hz", "arm_velocity_scale",
                    "arm_max_velocity", "hand_max_velocity", "max_step", "watchdog_timeout",
                    "sim_real_time_factor", "depth_max_m", "hand_full_stroke", "hand_poll_rate_hz"):
            _require(key, getattr(self, key), lambda v: v > 0, "> 0")
        for key in ("arm_margin", "hand_margin", "ramp_time", "camera_rate_hz"):
            _require(key, getattr(self, key), lambda v: v >= 0, ">= 0")
        for key in ("command_topic", "state_topic", "estop_topic", "estop_service", "diagnostics_topic"):
            if not getattr(self, key):
                raise ValueError(f"{key}: must not be empty")
        if len(self.camera_names) != len(self.camera_sim_names):
            raise ValueError(f"camera_names ({len(self.camera_names)}) and camera_sim_names "
                             f"({len(self.camera_sim_names)}) must have the same length")
        if len(set(self.camera_names)) != len(self.camera_names) or not all(self.camera_names):
            raise ValueError(f"camera_names: must be unique and non-empty, got {self.camera_names}")
        for key in ("gr1_server_ip", "left_hand_ip", "right_hand_ip"):
            try:
                ipaddress.ip_address(getattr(self, key))
            except ValueError:
                raise ValueError(f"{key}: {getattr(self, key)!r} is not an IP address") from None
        for key in ("left_hand_ports", "right_hand_ports"):
            ports = getattr(self, key)
            if len(ports) != 2 or not all(0 < p < 65536 for p in ports):
                raise ValueError(f"{key}: expected [control_port, query_port] in 1..65535, got {ports}")
        if not 0 < self.gr1_server_port < 65536:
            raise ValueError(f"gr1_server_port: {self.gr1_server_port} is not a port number")
        w, h = self.camera_width, self.camera_height
        if w < 0 or h < 0 or (w == 0) != (h == 0):
            raise ValueError(f"camera_width/camera_height: both 0 (native size) or both > 0, got "
                             f"{self.camera_width}x{self.camera_height}")
        if self.sim_seed < 0:
            raise ValueError(f"sim_seed: must be >= 0, got {self.sim_seed}")

    def camera_topics(self) -> dict[str, tuple[str, str]]:
        """Camera name -> (image topic, camera_info topic), as realsense2_camera names them."""
        topics = {n: CameraTopics.of(n, self.camera_namespace) for n in self.camera_names}
        return {n: (t.depth, t.depth_info) for n, t in topics.items()}


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Match the default's type; ints are accepted for floats (YAML writes 100 for 100.0)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{key}: must be finite, got {value}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        item_type = _LIST_ITEM_TYPES[key]
        if not all(isinstance(v, item_type) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{key}: expected a list of {item_type.__name__}, got {value!r}")
        return list(value)
    raise TypeError(f"{key}: unsupported config type {type(default).__name__}")  # pragma: no cover


_LIST_ITEM_TYPES: dict[str, type] = {
    "camera_names": str,
    "camera_sim_names": str,
    "gr1_zenoh_listen": str,
    "left_hand_ports": int,
    "right_hand_ports": int,
}


def _require(key: str, value: float, ok, text: str) -> None:
    if not ok(value):
        raise ValueError(f"{key}: must be {text}, got {value}")


def load_driver_config(path: str | Path) -> DriverConfig:
    """Read a ROS params file (``gr1_driver: ros__parameters: {...}``) or a plain mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    if NODE_NAME in data:
        node = data[NODE_NAME]
        if not isinstance(node, dict) or not isinstance(node.get("ros__parameters"), dict):
            raise ValueError(f"{path}: expected '{NODE_NAME}: ros__parameters:' mapping")
        data = node["ros__parameters"]
    try:
        return DriverConfig.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def default_config_path() -> Path:
    """config/driver.yaml where the workspace keeps its configuration (recipe_common.paths decides)."""
    return config_path("driver.yaml")
