"""The one interface every robot backend implements (sim twin, GR1 hardware, test fakes).

Orders and units are fixed here so that no backend can drift: state arrays follow
``robot_spec.state_joint_names(hand)`` (actuated joints, then coupled hand joints), targets follow
``robot_spec.actuated_joint_names()`` (26), all in radians (rad/s, Nm or the backend's effort unit).
Backends never see unsafe values: the node only writes what SafetyController produced, and
``check_targets`` is a second line of defence against a programming error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from recipe_common import robot_spec


@dataclass
class BackendStatus:
    ok: bool
    message: str
    values: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    name: str = "backend"

    def __init__(self, hand: str = robot_spec.DEFAULT_HAND) -> None:
        self.hand = hand
        self.state_names = robot_spec.state_joint_names(hand)
        self.actuated_names = robot_spec.actuated_joint_names()

    @abstractmethod
    def start(self) -> None:
        """Connect / build and begin producing state; may block for a few seconds."""

    @abstractmethod
    def stop(self) -> None:
        """Release resources; must be safe to call twice or without start()."""

    @abstractmethod
    def read_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, effort) in state_names order; NaN where not yet known."""

    @abstractmethod
    def write_targets(self, q: np.ndarray) -> None:
        """Joint position targets (26,) in actuated order, radians."""

    def status(self) -> BackendStatus:
        return BackendStatus(True, "ok")

    def check_targets(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        n = len(self.actuated_names)
        if q.shape != (n,):
            raise ValueError(f"{self.name}: targets have shape {q.shape}, expected ({n},)")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{self.name}: refusing non-finite targets")
        return q


@runtime_checkable
class DepthCameraSource(Protocol):
    """A backend that can render depth cameras (the sim twin); the node publishes them."""

    def depth_cameras(self) -> list[str]:
        """Backend camera names available for render_depth."""
        ...

    def render_depth(self, camera: str) -> tuple[np.ndarray, dict]:
        """(float32 depth (H, W) in metres, camera_info dict with width, height, fx, fy, cx, cy, frame_id)."""
        ...
