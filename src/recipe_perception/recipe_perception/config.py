"""Perception configuration: one flat, validated parameter set shared by config/perception.yaml and ROS.

The names are the ROS parameters of the ``perception`` node, so config/perception.yaml has the
``perception: ros__parameters:`` layout and works with ``--ros-args --params-file``. The node declares
every field and validates with ``PerceptionConfig.from_dict``; tools, benchmarks and tests read the file
with ``load_perception_config``. Every error is a recipe_common ``ConfigError`` naming the key (and the
file) and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_common import robot_spec
from recipe_common.cameras import HEAD, THIRD_VIEW, CameraTopics, camera_table
from recipe_common.config import (
    ConfigError,
    as_float,
    as_int,
    as_str,
    as_vector,
    in_file,
    load_node_params,
)
from recipe_common.paths import config_path
from recipe_perception.depth_segmenter import DepthSegmenterConfig
from recipe_perception.params import coerce_all
from recipe_perception.segmenter import Prompt

NODE_NAME = "perception"
SEGMENTERS = ("depth", "sam2")


@dataclass(frozen=True)
class PerceptionConfig:
    # cameras and topics ("" = the camera table's realsense2_camera name for that camera)
    camera: str = THIRD_VIEW
    depth_topic: str = ""
    camera_info_topic: str = ""
    color_topic: str = ""
    joint_states_topic: str = "/joint_states"
    object_state_topic: str = "/object_state"
    debug_image_topic: str = "/perception/debug_image"
    publish_debug_image: bool = True
    head_camera: str = HEAD
    head_depth_topic: str = ""
    head_camera_info_topic: str = ""
    head_policy_image_topic: str = "/perception/head_depth/policy_image"
    head_segmented_topic: str = "/perception/head_depth/segmented"
    reset_service: str = "/perception/reset"
    diagnostics_topic: str = "/diagnostics"
    # what and how often
    rate_hz: float = 5.0
    extrinsics: str = "scene"
    target_prompt: str = "auto"
    segmenter: str = "depth"
    hand: str = robot_spec.DEFAULT_HAND
    self_filter: bool = True
    self_filter_padding_m: float = 0.0
    hand_attachment: bool = True
    # bad and stale input
    max_frame_age_s: float = 0.5
    frame_timeout_s: float = 1.0
    joint_state_timeout_s: float = 0.5
    color_sync_s: float = 0.05
    min_valid_fraction: float = 0.05
    # track status
    occluded_timeout_s: float = 1.0
    init_timeout_s: float = 3.0
    # depth segmenter
    processing_scale: int = 2
    workspace_min: list[float] = field(default_factory=lambda: [0.12, -0.45, -0.12])
    workspace_max: list[float] = field(default_factory=lambda: [0.85, 0.45, 0.45])
    workspace_centre: list[float] = field(default_factory=lambda: [0.30, 0.0, 0.0])
    plane_threshold_m: float = 0.012
    min_height_m: float = 0.02
    edge_jump_m: float = 0.03
    robot_margin_m: float = 0.03
    min_blob_px: int = 15
    gate_m: float = 0.08
    # a box-shaped target's footprint half-extents (m); [0, 0] = round or square (as deep as wide)
    object_footprint_m: list[float] = field(default_factory=lambda: [0.0, 0.0])
    # head depth outputs
    head_min_height_m: float = 0.02
    # sam2 segmenter
    sam2_checkpoint: str = ""
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml"
    sam2_device: str = "cpu"

    @classmethod
    def from_dict(cls, d: Any) -> PerceptionConfig:
        """Build and validate; unknown keys and wrong types raise ConfigError naming the key."""
        cfg = cls(**coerce_all(cls, d, NODE_NAME))
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        w = NODE_NAME
        table = camera_table()
        as_str(self.camera, f"{w}.camera", choices=sorted(table))
        if self.head_camera:
            as_str(self.head_camera, f"{w}.head_camera", choices=sorted(table))
        as_str(self.segmenter, f"{w}.segmenter", choices=SEGMENTERS)
        as_str(self.hand, f"{w}.hand", choices=sorted(robot_spec.HANDS))
        as_str(self.extrinsics, f"{w}.extrinsics", nonempty=True)
        for key in (
            "rate_hz",
            "max_frame_age_s",
            "frame_timeout_s",
            "joint_state_timeout_s",
            "color_sync_s",
            "plane_threshold_m",
            "edge_jump_m",
            "gate_m",
        ):
            as_float(getattr(self, key), f"{w}.{key}", positive=True)
        for key in (
            "self_filter_padding_m",
            "occluded_timeout_s",
            "init_timeout_s",
            "min_height_m",
            "robot_margin_m",
            "head_min_height_m",
        ):
            as_float(getattr(self, key), f"{w}.{key}", nonnegative=True)
        as_float(self.min_valid_fraction, f"{w}.min_valid_fraction", 0.0, 1.0)
        as_int(self.processing_scale, f"{w}.processing_scale", minimum=1, maximum=8)
        as_int(self.min_blob_px, f"{w}.min_blob_px", minimum=1)
        lo = as_vector(self.workspace_min, f"{w}.workspace_min", 3)
        hi = as_vector(self.workspace_max, f"{w}.workspace_max", 3)
        if (lo >= hi).any():
            raise ConfigError(
                f"{w}.workspace_min must be < workspace_max on every axis, got "
                f"{lo.tolist()} and {hi.tolist()}"
            )
        as_vector(self.workspace_centre, f"{w}.workspace_centre", 3)
        fp = as_vector(self.object_footprint_m, f"{w}.object_footprint_m", 2)
        if not ((fp == 0.0).all() or (fp > 0.0).all()):
            raise ConfigError(f"{w}.object_footprint_m: two positive half-extents (m), or [0, 0] for a round "
                              f"or square object; got {fp.tolist()}")
        for key in ("object_state_topic", "joint_states_topic", "reset_service", "diagnostics_topic"):
            as_str(getattr(self, key), f"{w}.{key}", nonempty=True)
        try:
            Prompt.parse(self.target_prompt)
        except ValueError as exc:
            raise ConfigError(f"{w}.target_prompt: {exc}") from None
        if self.segmenter == "sam2" and not self.sam2_checkpoint:
            raise ConfigError(
                f"{w}.sam2_checkpoint: the sam2 segmenter needs a checkpoint path "
                "(SAM2 weights come from the SAM2 release; none ship with this workspace)"
            )

    # ------------------------------------------------------------------ derived
    def footprint(self) -> tuple[float, float] | None:
        """The box footprint the centre estimate uses, or None (round or square: as deep as wide)."""
        a, b = (float(v) for v in self.object_footprint_m)
        return (a, b) if a > 0.0 else None

    def prompt(self) -> Prompt:
        return Prompt.parse(self.target_prompt)

    def topics(self) -> CameraTopics:
        return camera_table()[self.camera].topics()

    def depth_topics(self) -> tuple[str, str]:
        """(image, camera_info) of the lifted camera: aligned-to-colour depth for sam2 (one pixel grid)."""
        t = self.topics()
        img, info = (
            (t.aligned_depth, t.aligned_depth_info) if self.segmenter == "sam2" else (t.depth, t.depth_info)
        )
        return self.depth_topic or img, self.camera_info_topic or info

    def color_topic_name(self) -> str:
        return self.color_topic or self.topics().color

    def head_topics(self) -> tuple[str, str] | None:
        if not self.head_camera:
            return None
        t = camera_table()[self.head_camera].topics()
        return self.head_depth_topic or t.depth, self.head_camera_info_topic or t.depth_info

    def depth_segmenter_config(self) -> DepthSegmenterConfig:
        return DepthSegmenterConfig(
            scale=self.processing_scale,
            workspace_min=tuple(self.workspace_min),
            workspace_max=tuple(self.workspace_max),
            workspace_centre=tuple(self.workspace_centre),
            plane_threshold_m=self.plane_threshold_m,
            min_height_m=self.min_height_m,
            edge_jump_m=self.edge_jump_m,
            robot_margin_m=self.robot_margin_m,
            min_blob_px=self.min_blob_px,
            gate_m=self.gate_m,
        )


def load_perception_config(path: str | Path | None = None, **overrides: Any) -> PerceptionConfig:
    """Read a ROS params file (``perception: ros__parameters: {...}``), default config/perception.yaml."""
    path = Path(path) if path is not None else config_path("perception.yaml")
    params = load_node_params(path, NODE_NAME, ["realsense"])
    params.update(overrides)
    try:
        return PerceptionConfig.from_dict(params)
    except ConfigError as exc:
        raise in_file(path, exc) from None
