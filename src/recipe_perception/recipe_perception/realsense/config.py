"""The realsense ingest node's parameters (``realsense: ros__parameters:`` in config/perception.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recipe_common.cameras import DEFAULT_NAMESPACE, camera_table
from recipe_common.config import ConfigError, as_float, as_int, as_str
from recipe_perception.params import coerce_all
from recipe_perception.realsense.source import STAMP_MODES

NODE_NAME = "realsense"


@dataclass(frozen=True)
class RealSenseConfig:
    # One camera by default (the only one connected); a GR1 setup lists both with their serial numbers.
    camera_names: list[str] = field(default_factory=lambda: ["third_view"])
    serials: list[str] = field(default_factory=lambda: [""])
    playback: str = ""
    playback_camera: str = "third_view"
    playback_loop: bool = False
    playback_realtime: bool = True
    stamp_mode: str = ""
    width: int = 848
    height: int = 480
    fps: int = 30
    enable_color: bool = True
    align_depth: bool = True
    namespace: str = DEFAULT_NAMESPACE
    frame_timeout_ms: int = 1000
    reconnect_period_s: float = 2.0
    diagnostics_topic: str = "/diagnostics"

    @classmethod
    def from_dict(cls, d: Any) -> RealSenseConfig:
        cfg = cls(**coerce_all(cls, d, NODE_NAME))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        w = NODE_NAME
        if self.playback:
            if self.playback_camera not in self.camera_names and self.playback_camera not in [
                c.ros_name for c in camera_table().values()
            ]:
                raise ConfigError(f"{w}.playback_camera: {self.playback_camera!r} is not a camera name")
        else:
            if not self.camera_names:
                raise ConfigError(f"{w}.camera_names: must name at least one camera")
            if len(self.serials) != len(self.camera_names):
                raise ConfigError(
                    f"{w}.serials: one serial per camera name ({len(self.camera_names)}), got "
                    f"{len(self.serials)} (use \"\" for 'the only connected device')"
                )
            if len(set(self.camera_names)) != len(self.camera_names):
                raise ConfigError(f"{w}.camera_names: must be unique, got {self.camera_names}")
            named = [s for s in self.serials if s]
            if len(set(named)) != len(named):
                raise ConfigError(f"{w}.serials: each camera needs its own serial, got {self.serials}")
            if len(self.camera_names) > 1 and not all(self.serials):
                raise ConfigError(
                    f"{w}.serials: with several cameras every one needs its serial number "
                    "(rs-enumerate-devices lists them)"
                )
        if self.stamp_mode:
            as_str(self.stamp_mode, f"{w}.stamp_mode", choices=STAMP_MODES)
        as_int(self.width, f"{w}.width", minimum=1)
        as_int(self.height, f"{w}.height", minimum=1)
        as_int(self.fps, f"{w}.fps", minimum=1, maximum=300)
        as_int(self.frame_timeout_ms, f"{w}.frame_timeout_ms", minimum=10)
        as_float(self.reconnect_period_s, f"{w}.reconnect_period_s", positive=True)

    def cameras(self) -> list[tuple[str, str, str]]:
        """(ros name, serial, playback file) of each camera to open."""
        if self.playback:
            return [(self.playback_camera, "", self.playback)]
        return [(n, s, "") for n, s in zip(self.camera_names, self.serials, strict=True)]
