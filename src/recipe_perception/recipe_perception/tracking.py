"""Track status over time: TRACKING / OCCLUDED / LOST / INITIALIZING and a confidence; pure, no ROS.

The status values are recipe_interfaces/ObjectState's constants. The rules:

* after a reset the track is INITIALIZING until the segmenter finds the prompted target, and LOST with
  the segmenter's reason if it has not after ``init_timeout_s``;
* a frame with the target: TRACKING, at the measured position, confidence = the segmenter's score;
* a frame without it (hidden, not found, or a bad frame): OCCLUDED for up to ``occluded_timeout_s``
  after the last measurement, holding that *measured* position with a confidence that falls linearly
  to 0; then LOST;
* LOST and INITIALIZING never carry a position (``position`` is None): nothing is made up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class TrackStatus(IntEnum):
    LOST = 0
    TRACKING = 1
    INITIALIZING = 2
    OCCLUDED = 3


@dataclass(frozen=True)
class TrackUpdate:
    status: TrackStatus
    position: np.ndarray | None  # base frame; None for LOST / INITIALIZING
    confidence: float
    reason: str  # why the status is not TRACKING ("" when it is)


class TrackState:
    def __init__(self, occluded_timeout_s: float = 1.0, init_timeout_s: float = 3.0) -> None:
        if occluded_timeout_s < 0 or init_timeout_s < 0:
            raise ValueError("timeouts must be >= 0")
        self.occluded_timeout_s = occluded_timeout_s
        self.init_timeout_s = init_timeout_s
        self.reset(0.0)

    def reset(self, now: float) -> None:
        self.t_reset = now
        self.last_position: np.ndarray | None = None
        self.last_seen: float | None = None
        self.last_confidence = 0.0
        self.status = TrackStatus.INITIALIZING

    @property
    def ever_seen(self) -> bool:
        return self.last_seen is not None

    def measured(self, stamp: float, position: np.ndarray, score: float) -> TrackUpdate:
        p = np.asarray(position, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"a measured position must be 3 finite numbers, got {p}")
        self.last_position, self.last_seen = p.copy(), stamp
        self.last_confidence = float(np.clip(score, 0.0, 1.0))
        self.status = TrackStatus.TRACKING
        return TrackUpdate(self.status, p.copy(), self.last_confidence, "")

    def predicted(
        self, stamp: float, position: np.ndarray, reason: str, confidence: float = 0.5
    ) -> TrackUpdate:
        """Not seen, but carried by the robot's closed hand to ``position`` (hand_attachment): OCCLUDED
        at that position; it counts as a sighting for the timeout, so a release is followed smoothly."""
        p = np.asarray(position, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"a predicted position must be 3 finite numbers, got {p}")
        self.last_position, self.last_seen = p.copy(), stamp
        self.last_confidence = float(np.clip(confidence, 0.0, 1.0))
        self.status = TrackStatus.OCCLUDED
        return TrackUpdate(self.status, p.copy(), self.last_confidence, reason)

    def missing(self, stamp: float, reason: str) -> TrackUpdate:
        """No target in this frame (or no usable frame) at time ``stamp``."""
        if self.last_seen is None:
            if stamp - self.t_reset <= self.init_timeout_s:
                self.status = TrackStatus.INITIALIZING
            else:
                self.status = TrackStatus.LOST
            return TrackUpdate(self.status, None, 0.0, reason)
        age = stamp - self.last_seen
        if age <= self.occluded_timeout_s and self.last_position is not None:
            self.status = TrackStatus.OCCLUDED
            frac = 1.0 - age / self.occluded_timeout_s if self.occluded_timeout_s > 0 else 0.0
            return TrackUpdate(
                self.status, self.last_position.copy(), self.last_confidence * max(frac, 0.0), reason
            )
        self.status = TrackStatus.LOST
        return TrackUpdate(self.status, None, 0.0, f"{reason}; not seen for {age:.1f} s")
