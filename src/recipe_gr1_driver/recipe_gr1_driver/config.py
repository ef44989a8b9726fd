"""Driver configuration: one flat, validated parameter set shared by YAML files and ROS parameters.

The same names are ROS parameters of the ``gr1_driver`` node, so ``config/driver.yaml`` has the
``gr1_driver: ros__parameters:`` layout and works with ``--ros-args --params-file``. The node
declares every field below as a parameter and validates the result with ``DriverConfig.from_dict``;
tools and tests read the file with ``load_driver_config``.

ROS itself silently ignores a params-file key the node does not declare, and a whole section whose
node name does not match (``gr1_drivr:`` would start the sim on defaults instead of the configured
robot). So the node validates every ``--params-file`` up front with ``check_params_files`` before
rclpy reads it: an empty file, a YAML syntax error, a top-level key that is not this node, an
unknown parameter, a wrong type or a value outside its range each stop the node with one
``ConfigError`` naming the file and the key (and the allowed range), exit code 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_common import robot_spec
from recipe_common.cameras import DEFAULT_NAMESPACE, CameraTopics, camera_table
from recipe_common.config import Bounds, ConfigError, field_default, in_file, load_yaml, parse_yaml
from recipe_common.paths import config_path
from recipe_gr1_driver import safety

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
    arm_margin: float = safety.ARM_MARGIN
    hand_margin: float = safety.HAND_MARGIN
    arm_velocity_scale: float = safety.ARM_VELOCITY_SCALE
    arm_max_velocity: float = safety.ARM_MAX_VELOCITY
    hand_max_velocity: float = safety.HAND_MAX_VELOCITY
    max_step: float = safety.MAX_STEP
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
    def from_dict(cls, d: Mapping[str, Any]) -> DriverConfig:
        """Build and validate; an unknown key, wrong type or out-of-range value is a ConfigError naming it."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"driver config must be a mapping, got {type(d).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            hints = [f"{k!r} -> {m[0]!r}" for k in unknown
                     if (m := difflib.get_close_matches(k, list(known), n=1, cutoff=0.75))]
            raise ConfigError(f"unknown driver config keys: {unknown}"
                              + (f" (did you mean {', '.join(hints)}?)" if hints else "")
                              + f"; allowed: {sorted(known)}")
        values = {k: _coerce(k, v, field_default(known[k])) for k, v in d.items()}
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: {self.backend!r} is not one of {list(BACKENDS)}")
        if self.hand not in robot_spec.HANDS:
            raise ConfigError(f"hand: {self.hand!r} is not one of {sorted(robot_spec.HANDS)}")
        if self.backend == "gr1" and self.hand != "fourier":
            raise ConfigError("hand: the gr1 hardware backend supports only the 'fourier' hand (fourier-dhx)")
        for key, bounds in BOUNDS.items():
            value = getattr(self, key)
            wrong = bounds.violation(value)
            if wrong:
                raise ConfigError(f"{key}: {wrong} (allowed {bounds.text()}), got {value:g}")
        for key in ("left_hand_ports", "right_hand_ports"):
            ports = getattr(self, key)
            if len(ports) != 2 or not all(0 < p < 65536 for p in ports):
                raise ConfigError(f"{key}: expected [control_port, query_port] in 1..65535, got {ports}")
        for key in ("command_topic", "state_topic", "estop_topic", "estop_service", "diagnostics_topic"):
            if not getattr(self, key):
                raise ConfigError(f"{key}: must not be empty")
        if len(self.camera_names) != len(self.camera_sim_names):
            raise ConfigError(f"camera_names ({len(self.camera_names)}) and camera_sim_names "
                              f"({len(self.camera_sim_names)}) must have the same length")
        if len(set(self.camera_names)) != len(self.camera_names) or not all(self.camera_names):
            raise ConfigError(f"camera_names: must be unique and non-empty, got {self.camera_names}")
        for key in ("gr1_server_ip", "left_hand_ip", "right_hand_ip"):
            try:
                ipaddress.ip_address(getattr(self, key))
            except ValueError:
                raise ConfigError(f"{key}: {getattr(self, key)!r} is not an IP address") from None
        w, h = self.camera_width, self.camera_height
        if (w == 0) != (h == 0):
            raise ConfigError(f"camera_width/camera_height: both 0 (native size) or both > 0, got "
                              f"{self.camera_width}x{self.camera_height}")

    def camera_topics(self) -> dict[str, tuple[str, str]]:
        """Camera name -> (image topic, camera_info topic), as realsense2_camera names them."""
        topics = {n: CameraTopics.of(n, self.camera_namespace) for n in self.camera_names}
        return {n: (t.depth, t.depth_info) for n, t in topics.items()}


# Every numeric field has a range. The upper ends are what a sane setup needs, not hardware limits:
# a value past them is a typo (1e9 for 1e-1) that would otherwise switch a safety check off.
BOUNDS: dict[str, Bounds] = {
    "state_rate_hz": Bounds(0, 1000, unit="Hz"),
    "control_rate_hz": Bounds(0, 1000, unit="Hz"),
    "diagnostics_rate_hz": Bounds(0, 100, unit="Hz"),
    "arm_margin": Bounds(0, 0.5, True, "rad"),
    "hand_margin": Bounds(0, 0.5, True, "rad"),
    "arm_velocity_scale": Bounds(0, 1, unit="(fraction of the URDF velocity limit)"),
    "arm_max_velocity": Bounds(0, 10, unit="rad/s"),
    "hand_max_velocity": Bounds(0, 20, unit="rad/s"),
    "max_step": Bounds(0, 0.5, unit="rad per control step"),
    "watchdog_timeout": Bounds(0, 10, unit="s"),
    "ramp_time": Bounds(0, 30, True, "s"),
    "sim_seed": Bounds(0, 2**31 - 1, True),
    "sim_real_time_factor": Bounds(0, 10),
    "camera_rate_hz": Bounds(0, 60, True, "Hz (0 turns the cameras off)"),
    "camera_width": Bounds(0, 1280, True, "px (0: the D435 stream size)"),
    "camera_height": Bounds(0, 720, True, "px (0: the D435 stream size)"),
    "depth_max_m": Bounds(0, 65.535, unit="m (16-bit millimetres)"),
    "gr1_server_port": Bounds(1, 65535, True),
    "hand_full_stroke": Bounds(0, 12, unit="DexHand units (firmware range 0..12)"),
    "hand_poll_rate_hz": Bounds(0, 200, unit="Hz"),
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Match the default's type; ints are accepted for floats (YAML writes 100 for 100.0)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be finite, got {value}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_type = _LIST_ITEM_TYPES[key]
        if not all(isinstance(v, item_type) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{key}: expected a list of {item_type.__name__}, got {value!r}")
        return list(value)
    raise TypeError(f"{key}: unsupported config type {type(default).__name__}")  # pragma: no cover


_LIST_ITEM_TYPES: dict[str, type] = {
    "camera_names": str,
    "camera_sim_names": str,
    "gr1_zenoh_listen": str,
    "left_hand_ports": int,
    "right_hand_ports": int,
}

# --------------------------------------------------------------------------- files

PARAMS_KEY = "ros__parameters"
# Top-level keys of a ROS params file that apply to this node: its name, with or without a namespace,
# and the "all nodes" wildcard that launch_ros writes for inline parameters.
WILDCARD_NODE_KEYS = ("/**", "**")


def applies_to_driver(key: Any) -> bool:
    """True for a params-file node key selecting the driver: gr1_driver, /gr1_driver, /ns/gr1_driver, /**."""
    return isinstance(key, str) and (key in WILDCARD_NODE_KEYS or key.rstrip("/").split("/")[-1] == NODE_NAME)


def driver_parameters(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The parameter mapping of a params file's node sections (all of which must select the driver)."""
    params: dict[str, Any] = {}
    for key, section in data.items():
        if not applies_to_driver(key):
            close = difflib.get_close_matches(str(key), [NODE_NAME], n=1, cutoff=0.6)
            raise ConfigError(
                f"{where}: top-level key {key!r} is not this node's name"
                + (f" (did you mean {NODE_NAME!r}?)" if close else "")
                + f"; expected '{NODE_NAME}:' (or a namespaced '/<ns>/{NODE_NAME}:', or '/**:') with a "
                f"'{PARAMS_KEY}:' mapping under it. ROS would ignore this section and start the driver on "
                f"its defaults")
        if not isinstance(section, Mapping) or set(section) != {PARAMS_KEY} \
                or not isinstance(section[PARAMS_KEY], Mapping):
            raise ConfigError(f"{where}: expected '{key}: {PARAMS_KEY}:' mapping (and nothing else under "
                              f"'{key}'), got {_short(section)}")
        params.update(section[PARAMS_KEY])
    return params


def _short(value: Any) -> str:
    text = repr(dict(value) if isinstance(value, Mapping) else value)
    return text if len(text) < 80 else text[:77] + "..."


def load_driver_config(path: str | Path) -> DriverConfig:
    """Read a ROS params file (``gr1_driver: ros__parameters: {...}``) or a plain mapping of fields.

    Every problem is a ConfigError naming the file: missing (FileNotFoundError), empty, not YAML,
    a node section for another node, an unknown key, a wrong type or a value out of range.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"driver config file not found: {path}") from None
    try:
        data = parse_yaml(text, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).split(': ', 1)[-1]}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected '{NODE_NAME}: {PARAMS_KEY}: {{...}}'")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(DriverConfig)}
    params = data if any(k in fields for k in data) else driver_parameters(data, str(path))
    try:
        return DriverConfig.from_dict(params)
    except ConfigError as exc:
        raise in_file(path, exc) from None


def check_params_file(path: str | Path) -> DriverConfig:
    """Validate a ``--params-file`` for the driver node (the params layout is required here)."""
    path = Path(path)
    data = load_yaml(path) if path.is_file() else None  # load_yaml: empty / syntax / top-level errors
    if data is None:
        raise FileNotFoundError(f"--params-file {path}: no such file")
    try:
        return DriverConfig.from_dict(driver_parameters(data, str(path)))
    except ConfigError as exc:
        raise in_file(path, exc) from None


# ROS arguments that take a value (``-p`` and ``--params-file`` are read; the others are skipped over).
_VALUE_FLAGS = ("-p", "--param", "--params-file", "-r", "--remap", "--log-level", "-e", "--enclave")


def _ros_arg_values(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """(flag, value) of each value-taking argument inside ``--ros-args ... [--]`` (None: value missing)."""
    out: list[tuple[str, str | None]] = []
    in_ros = False
    it = iter(args)
    for arg in it:
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg in _VALUE_FLAGS:
            out.append((arg, next(it, None)))
    return out


def params_files(args: Sequence[str]) -> list[str]:
    """The ``--params-file FILE`` values of the ROS arguments in ``args`` (argv including the program)."""
    out: list[str] = []
    for flag, value in _ros_arg_values(args):
        if flag == "--params-file":
            if value is None:
                raise ConfigError("--params-file needs a file name")
            out.append(value)
    return out


def param_override_names(args: Sequence[str]) -> list[str]:
    """Parameter names of the ``-p name:=value`` / ``--param name:=value`` ROS arguments in ``args``."""
    names: list[str] = []
    for flag, value in _ros_arg_values(args):
        if flag in ("-p", "--param"):
            name = (value or "").split(":=", 1)[0]
            names.append(name.rsplit(":", 1)[-1])  # "node:param" form: the parameter part
    return names


def check_params_files(args: Sequence[str]) -> None:
    """Validate the ROS arguments before rclpy reads them (see the module docstring): every
    ``--params-file``, and the names given with ``-p`` (ROS ignores an undeclared one silently)."""
    for path in params_files(args):
        check_params_file(path)
    known = {f.name for f in dataclasses.fields(DriverConfig)}
    for name in param_override_names(args):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            raise ConfigError(f"-p {name}:=...: unknown driver parameter {name!r}"
                              + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; allowed: {sorted(known)}")


def default_config_path() -> Path:
    """config/driver.yaml where the workspace keeps its configuration (recipe_common.paths decides)."""
    return config_path("driver.yaml")
