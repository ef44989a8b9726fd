"""The driver's command state machine: safety pieces wired together, still free of ROS.

The node shell only forwards messages and clock ticks here; all decisions about what reaches
the backend are made in this module, so they can be tested without processes or timing.

Per-joint bookkeeping makes partial commands (one arm, one hand) from different publishers work:
each joint remembers its source, its last command time (watchdog) and its ramp.

Behaviour
---------
* ``submit``: a validated command updates the targets of the joints it names. A joint starts a
  ramp from the pose it currently holds when its source changes, when it was idle (watchdog
  expired or never commanded), or on its first command after an e-stop release.
* ``update``: once per control tick. Joints whose watchdog expired get their target frozen at
  the pose they hold now ("hold the last safe pose"). While the e-stop is engaged the output is
  frozen at the last safe command; otherwise the (ramped) target goes through SafetyFilter.
* The e-stop holds the last *commanded* safe pose rather than the measured one: that keeps the
  command continuous (no step), and with rate-limited commands the two differ only by tracking lag.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recipe_gr1_driver.safety import CommandRejected, EStop, Ramp, SafetyFilter, Watchdog


@dataclass(frozen=True)
class ControllerStatus:
    initialised: bool
    estop_engaged: bool
    estop_reason: str
    alive_joints: int
    ramping_joints: int
    command_age_s: float
    accepted_count: int
    rejected_count: int
    last_rejection: str


class SafetyController:
    """Thread-safe: submit() and update() may be called from different executor threads."""

    def __init__(self, safety: SafetyFilter, watchdog_timeout: float, ramp_time: float) -> None:
        n = safety.size
        self.safety = safety
        self.watchdog = Watchdog(watchdog_timeout, n)
        self.ramp = Ramp(ramp_time, n)
        self.estop = EStop()
        self._lock = threading.Lock()
        self._output: np.ndarray | None = None
        self._target = np.zeros(n)
        self._active = np.zeros(n, dtype=bool)
        self._needs_ramp = np.ones(n, dtype=bool)
        self._source: list[str | None] = [None] * n
        self._last_tick: float | None = None
        self.accepted_count = 0
        self.rejected_count = 0
        self.last_rejection = ""

    @property
    def initialised(self) -> bool:
        return self._output is not None

    def reset(self, measured: np.ndarray) -> np.ndarray:
        """Start holding the measured pose (clipped into the safe window); returns the hold pose.

        The clip is the only place the command may jump, by at most the margin, and only when the
        robot starts outside the margin window.
        """
        q = np.asarray(measured, dtype=np.float64)
        if q.shape != (self.safety.size,) or not np.all(np.isfinite(q)):
            raise ValueError(f"reset needs a finite ({self.safety.size},) pose, got {q!r}")
        with self._lock:
            self._output = self.safety.limits.clip(q)
            self._target = self._output.copy()
            self._active[:] = False
            self._needs_ramp[:] = True
            self._source = [None] * self.safety.size
            self._last_tick = None
            return self._output.copy()

    def submit(self, names: Sequence[str], positions: Sequence[float], source: str, now: float) -> None:
        """Accept a named command or raise CommandRejected (counted, nothing applied)."""
        try:
            idx, values = self.safety.validate(names, positions)
        except CommandRejected as exc:
            with self._lock:
                self.rejected_count += 1
                self.last_rejection = exc.reason
            raise
        with self._lock:
            if self._output is None:
                self.rejected_count += 1
                self.last_rejection = "driver not initialised (no robot state yet)"
                raise CommandRejected(self.last_rejection)
            alive = self.watchdog.alive(now)
            changed = np.array([self._source[i] != source for i in idx], dtype=bool)
            fresh = changed | ~alive[idx] | ~self._active[idx] | self._needs_ramp[idx]
            if not self.estop.engaged:
                self.ramp.start(idx[fresh], self._output, now)
                self._needs_ramp[idx] = False
            self._target[idx] = values
            for i in idx:
                self._source[i] = source
            self._active[idx] = True
            self.watchdog.feed(now, idx)
            self.accepted_count += 1

    def update(self, now: float) -> np.ndarray:
        """The safe command for this tick."""
        with self._lock:
            if self._output is None:
                raise RuntimeError("SafetyController.update before reset()")
            dt = 0.0 if self._last_tick is None else now - self._last_tick
            self._last_tick = now
            expired = self._active & ~self.watchdog.alive(now)
            if np.any(expired):
                self._target[expired] = self._output[expired]
                self._active[expired] = False
                self._needs_ramp[expired] = True
            if self.estop.engaged:
                return self._output.copy()
            desired = self.ramp.apply(self._target, now)
            self._output = self.safety.filter(desired, self._output, dt)
            return self._output.copy()

    def engage_estop(self, reason: str) -> bool:
        with self._lock:
            return self.estop.engage(reason)

    def release_estop(self, now: float) -> bool:
        """Release; joints still being commanded ramp from the held pose to their targets."""
        with self._lock:
            changed = self.estop.release()
            if changed and self._output is not None:
                alive = self._active & self.watchdog.alive(now)
                self.ramp.start(np.flatnonzero(alive), self._output, now)
                self._needs_ramp[alive] = False
                self._needs_ramp[~alive] = True
                self._last_tick = None
            return changed

    def status(self, now: float) -> ControllerStatus:
        with self._lock:
            alive = self._active & self.watchdog.alive(now)
            return ControllerStatus(
                initialised=self._output is not None,
                estop_engaged=self.estop.engaged,
                estop_reason=self.estop.reason,
                alive_joints=int(np.count_nonzero(alive)),
                ramping_joints=int(np.count_nonzero(self.ramp.active(now) & alive)),
                command_age_s=self.watchdog.age(now),
                accepted_count=self.accepted_count,
                rejected_count=self.rejected_count,
                last_rejection=self.last_rejection,
            )
