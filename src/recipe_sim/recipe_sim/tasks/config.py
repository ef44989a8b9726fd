"""Task settings (config/tasks.yaml): episode length, spawn and goal regions, objects, init states.

Every task entry names its ``kind`` (which Task class runs it), so one kind can appear several times
with different settings (the handover directions). Validation is strict and errors name the key, e.g.
``tasks.handover.final_goal.y: ...``; ``TaskConfig.with_overrides`` re-validates, so an env built with
overrides can never run a config the YAML loader would have rejected.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common.config import as_bool, as_float, as_int, as_range, check_keys, load_yaml
from recipe_common.paths import config_path
from recipe_common.position_filter import check_weight
from recipe_common.tasks import TASK_NAMES
from recipe_sim.rewards import TASKS as REWARD_TASKS

FORMAT = "recipe_sim/tasks/v1"
CONFIG_FILE = "tasks.yaml"
KINDS = TASK_NAMES
DIRECTIONS = ("both", "left_to_right", "right_to_left")
IDLE_ARM_MODES = ("hold", "free")

_COMMON_KEYS = (
    "kind",
    "episode_length",
    "object_group",
    "reward_config",
    "init_states",
    "terminate_on_success",
    "spawn",
    "success",
    "sticker_count",
    "object_pos_filter",
)
_KIND_KEYS = {
    "grasp_reach": ("idle_arm", "goal"),
    "box_lift": ("lift_goal_height",),
    "handover": ("direction", "transfer_goal", "final_goal"),
}
_KIND_REQUIRED = {
    "grasp_reach": ("goal",),
    "box_lift": ("lift_goal_height",),
    "handover": ("direction", "transfer_goal", "final_goal"),
}


@dataclass(frozen=True)
class Region:
    """An axis-aligned box to sample from; z is relative to the table top (None for table-top spawns)."""

    x: tuple[float, float]
    y: tuple[float, float]
    z_above_table: tuple[float, float] | None = None

    def sample(
        self, rng: np.random.Generator, n: int, table_top: float, mirror_y: np.ndarray | None = None
    ) -> np.ndarray:
        """(n, 3) points; ``mirror_y`` (n,) bool flips y for those rows (region given for the left side).

        Rows without a z range get z = table_top (callers add the object's rest height).
        """
        pts = np.empty((n, 3))
        pts[:, 0] = rng.uniform(*self.x, size=n)
        pts[:, 1] = rng.uniform(*self.y, size=n)
        if self.z_above_table is None:
            pts[:, 2] = table_top
        else:
            pts[:, 2] = table_top + rng.uniform(*self.z_above_table, size=n)
        if mirror_y is not None:
            pts[np.asarray(mirror_y, dtype=bool), 1] *= -1.0
        return pts


@dataclass(frozen=True)
class ReadyPose:
    left_palm_xy: tuple[float, float]
    palm_height_above_table: float


@dataclass(frozen=True)
class TaskConfig:
    name: str
    kind: str
    episode_length: int
    object_group: str
    reward_config: str
    init_states: Path | None
    terminate_on_success: bool
    spawn: Region
    success: dict[str, Any] = field(default_factory=dict)  # overrides of rewards.yaml success thresholds
    sticker_count: int | None = None  # None: the natural count of the object's sticker placement
    # Weight of the previous estimate in the exponential filter of the actor's object position
    # (recipe_common.position_filter); 0 = the raw noisy reading. A policy trained behind it records it.
    object_pos_filter: float = 0.0
    idle_arm: str = "hold"  # grasp_reach
    goal: Region | None = None  # grasp_reach
    lift_goal_height: float = 0.0  # box_lift
    direction: str = "both"  # handover
    transfer_goal: Region | None = None  # handover
    final_goal: Region | None = None  # handover
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> TaskConfig:
        """A re-validated copy with some keys replaced (nested mappings are merged one level deep)."""
        if not overrides:
            return self
        if not isinstance(overrides, Mapping):
            raise ValueError(f"task overrides must be a mapping, got {type(overrides).__name__}")
        raw = copy.deepcopy(self.raw)
        for key, value in overrides.items():
            if isinstance(value, Mapping) and isinstance(raw.get(key), Mapping):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return parse_task(self.name, raw, base_dir=None)


@dataclass(frozen=True)
class TaskSuite:
    ready_pose: ReadyPose
    tasks: dict[str, TaskConfig]

    def get(self, name: str) -> TaskConfig:
        if name not in self.tasks:
            raise KeyError(f"unknown task {name!r}; config/tasks.yaml defines {sorted(self.tasks)}")
        return self.tasks[name]


def _region(raw: Any, where: str, with_z: bool) -> Region:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping with x, y{', z_above_table' if with_z else ''}")
    keys = ("x", "y", "z_above_table") if with_z else ("x", "y")
    check_keys(raw, keys, where, required=keys)
    z = as_range(raw["z_above_table"], f"{where}.z_above_table") if with_z else None
    if z is not None and z[0] < 0.0:
        raise ValueError(f"{where}.z_above_table must be >= 0 (above the table), got {list(z)}")
    return Region(as_range(raw["x"], f"{where}.x"), as_range(raw["y"], f"{where}.y"), z)


def parse_task(name: str, raw: Any, base_dir: Path | None) -> TaskConfig:
    """Validate one ``tasks.<name>`` entry; ``base_dir`` resolves a relative init_states path."""
    where = f"tasks.{name}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}.kind must be one of {list(KINDS)}, got {kind!r}")
    allowed = (*_COMMON_KEYS, *_KIND_KEYS[kind])
    required = ("kind", "episode_length", "object_group", "reward_config", "spawn", *_KIND_REQUIRED[kind])
    check_keys(raw, allowed, where, required=required)
    reward_config = raw["reward_config"]
    if reward_config not in REWARD_TASKS:
        raise ValueError(f"{where}.reward_config must be one of {list(REWARD_TASKS)}, got {reward_config!r}")
    if not isinstance(raw["object_group"], str) or not raw["object_group"]:
        raise ValueError(f"{where}.object_group must be a grouping name, got {raw['object_group']!r}")
    init_states = raw.get("init_states")
    if init_states is not None:
        if not isinstance(init_states, str | Path):
            raise ValueError(f"{where}.init_states must be a path or null, got {init_states!r}")
        init_states = Path(init_states)
        if not init_states.is_absolute() and base_dir is not None:
            init_states = base_dir / init_states
    success = raw.get("success") or {}
    if not isinstance(success, Mapping):
        raise ValueError(f"{where}.success must be a mapping of threshold overrides")
    sticker_count = raw.get("sticker_count")
    kw: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "episode_length": as_int(raw["episode_length"], f"{where}.episode_length", minimum=1),
        "object_group": raw["object_group"],
        "reward_config": reward_config,
        "init_states": init_states,
        "terminate_on_success": as_bool(
            raw.get("terminate_on_success", True), f"{where}.terminate_on_success"
        ),
        "spawn": _region(raw["spawn"], f"{where}.spawn", with_z=False),
        "success": dict(success),
        "sticker_count": None
        if sticker_count is None
        else as_int(sticker_count, f"{where}.sticker_count", 1),
        "object_pos_filter": check_weight(raw.get("object_pos_filter", 0.0), f"{where}.object_pos_filter"),
        "raw": copy.deepcopy(dict(raw)),
    }
    if kind == "grasp_reach":
        idle = raw.get("idle_arm", "hold")
        if idle not in IDLE_ARM_MODES:
            raise ValueError(f"{where}.idle_arm must be one of {list(IDLE_ARM_MODES)}, got {idle!r}")
        kw["idle_arm"] = idle
        kw["goal"] = _region(raw["goal"], f"{where}.goal", with_z=True)
    elif kind == "box_lift":
        kw["lift_goal_height"] = as_float(
            raw["lift_goal_height"], f"{where}.lift_goal_height", minimum=0.0, exclusive=True
        )
    else:
        if raw["direction"] not in DIRECTIONS:
            raise ValueError(f"{where}.direction must be one of {list(DIRECTIONS)}, got {raw['direction']!r}")
        kw["direction"] = raw["direction"]
        kw["transfer_goal"] = _region(raw["transfer_goal"], f"{where}.transfer_goal", with_z=True)
        kw["final_goal"] = _region(raw["final_goal"], f"{where}.final_goal", with_z=True)
    return TaskConfig(**kw)


def load_task_configs(path: str | Path | None = None) -> TaskSuite:
    """Read and validate config/tasks.yaml (or ``path``); errors name the file and the bad key.

    An env, its task, the trials and the init-state play each ask for the suite; the file is parsed once
    per version of it (path, modification time and size), so an edited file is read again.
    """
    path = (config_path(CONFIG_FILE) if path is None else Path(path)).resolve()
    try:
        st = path.stat()
    except OSError:
        return _parse_task_configs(path, -1, -1)  # load_yaml names the missing file
    return _parse_task_configs(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _parse_task_configs(path: Path, mtime_ns: int, size: int) -> TaskSuite:
    """The parse behind ``load_task_configs`` (the suite and its configs are frozen, so sharing is safe)."""
    data = load_yaml(path, FORMAT)
    base_dir = path.resolve().parent.parent  # the workspace: config/ sits in it
    try:
        check_keys(data, ("format", "ready_pose", "tasks"), "tasks.yaml", required=("ready_pose", "tasks"))
        rp = data["ready_pose"]
        if not isinstance(rp, Mapping):
            raise ValueError("ready_pose must be a mapping")
        check_keys(
            rp,
            ("left_palm_xy", "palm_height_above_table"),
            "ready_pose",
            required=("left_palm_xy", "palm_height_above_table"),
        )
        xy = rp["left_palm_xy"]
        if not isinstance(xy, list | tuple) or len(xy) != 2:
            raise ValueError(f"ready_pose.left_palm_xy must be [x, y], got {xy!r}")
        ready = ReadyPose(
            (as_float(xy[0], "ready_pose.left_palm_xy[0]"), as_float(xy[1], "ready_pose.left_palm_xy[1]")),
            as_float(rp["palm_height_above_table"], "ready_pose.palm_height_above_table", minimum=0.0),
        )
        tasks = data["tasks"]
        if not isinstance(tasks, Mapping) or not tasks:
            raise ValueError("tasks must be a non-empty mapping of name -> settings")
        return TaskSuite(ready, {str(n): parse_task(str(n), raw, base_dir) for n, raw in tasks.items()})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
