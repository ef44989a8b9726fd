"""The robot's joint positions at a depth frame's capture time, from a short history of joint states.

Why: the self-filter renders the robot where the joint states put it and removes those pixels from the
frame. A frame is processed up to a perception period after it was captured (the node runs at 5 Hz), so
the latest joint state can be 0.1-0.3 s newer than the image. While a hand approaches the object that moves
the rendered hand centimetres ahead of the imaged one; the imaged hand's pixels the render misses join the
object's blob and pull the centre towards the hand. On the twin (handover, 20 deploy trials) that put the
block 5-6 cm off, as TRACKING, from the moment hand A approached until the episode was lost; the same
frames replayed with the joint states at their capture time were 1-2 mm off.

``JointHistory.at(stamp)`` interpolates linearly between the joint states that bracket ``stamp``; a stamp
newer than the newest state gets the newest (joint states arrive a little after frames of the same
instant), one older than the history gets None.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np


class JointHistory:
    """Joint states of the last ``horizon_s`` seconds (by their own stamps), one name list at a time."""

    def __init__(self, horizon_s: float = 1.0) -> None:
        if not horizon_s > 0.0:
            raise ValueError(f"horizon_s must be positive, got {horizon_s!r}")
        self.horizon_s = float(horizon_s)
        self._names: list[str] | None = None
        self._stamps: deque[float] = deque()
        self._positions: deque[np.ndarray] = deque()

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp: float, names: Sequence[str], positions: Sequence[float]) -> None:
        """Record one joint state. A different name list starts the history over; an out-of-order stamp
        (older than the newest) is dropped."""
        names = list(names)
        q = np.asarray(positions, dtype=np.float64)
        if q.shape != (len(names),):
            raise ValueError(f"joint state has {len(names)} names and {q.size} positions")
        if names != self._names:
            self._names = names
            self._stamps.clear()
            self._positions.clear()
        elif self._stamps and stamp < self._stamps[-1]:
            return
        self._stamps.append(float(stamp))
        self._positions.append(q)
        while self._stamps and self._stamps[-1] - self._stamps[0] > self.horizon_s:
            self._stamps.popleft()
            self._positions.popleft()

    def at(self, stamp: float) -> tuple[list[str], list[float]] | None:
        """(names, positions) at ``stamp``; None when the history is empty or starts after ``stamp``."""
        if not self._stamps or self._names is None:
            return None
        stamps = np.fromiter(self._stamps, dtype=np.float64, count=len(self._stamps))
        if stamp >= stamps[-1]:
            return list(self._names), self._positions[-1].tolist()
        if stamp < stamps[0]:
            return None
        k = int(np.searchsorted(stamps, stamp, side="right"))  # stamps[k-1] <= stamp < stamps[k]
        t0, t1 = stamps[k - 1], stamps[k]
        w = 0.0 if t1 <= t0 else (stamp - t0) / (t1 - t0)
        q = (1.0 - w) * self._positions[k - 1] + w * self._positions[k]
        return list(self._names), q.tolist()
