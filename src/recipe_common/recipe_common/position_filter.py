"""The exponential filter a specialist may see its object position through, one per policy input row.

Why: the object position the actor reads carries Table IV's reading noise (2 cm per axis under the low-noise
profile, redrawn every 10 Hz step). For a 5 cm handover block that noise is what the actor cannot see
through; a clone trained on ``weight * previous + (1 - weight) * new`` gained 8 points under the low-noise
profile (docs/specialists.md). The same filter runs wherever such an actor gets its input: the sim env
(``RecipeVecEnv``, task key ``object_pos_filter``) and the deployed ``SpecialistPolicy``, so the policy node
feeds the actor what it was trained on.

Each row restarts from its next reading (no memory of the previous episode or of a teleport); weight 0 is
the identity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def check_weight(weight: float, where: str = "object_pos_filter") -> float:
    """A weight in [0, 1): 1 would never take a new reading."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise ValueError(f"{where} must be a number in [0, 1), got {weight!r}")
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"{where} must be in [0, 1) (the previous estimate's weight), got {weight}")
    return float(weight)


def recorded_weight(record: Mapping[str, Any]) -> float:
    """The weight a policy's record (checkpoint metadata, policy.json, an env's cfg) says its actor reads the
    object position through; 0 for records written before the weight was recorded (their actors read raw
    positions). The one reading of that rule, so that no caller can default differently."""
    return float(record.get("object_pos_filter", 0.0))


class ExponentialFilter:
    """``estimate = weight * estimate + (1 - weight) * reading`` per row; a restarted row takes its
    reading as it is."""

    def __init__(self, weight: float, rows: int, dim: int = 3) -> None:
        self.weight = check_weight(weight)
        self._estimate = np.zeros((int(rows), int(dim)))
        self._fresh = np.ones(int(rows), dtype=bool)

    def restart(self, rows: np.ndarray | list[int] | None = None) -> None:
        """Forget the estimate of ``rows`` (all when None): their next reading is taken as it is."""
        if rows is None:
            self._fresh[:] = True
        else:
            self._fresh[np.asarray(rows, dtype=int)] = True

    def __call__(self, readings: np.ndarray) -> np.ndarray:
        """(rows, dim) readings -> (rows, dim) estimates (a copy; the readings are not changed)."""
        x = np.asarray(readings, dtype=np.float64)
        if x.shape != self._estimate.shape:
            raise ValueError(f"readings must have shape {self._estimate.shape}, got {x.shape}")
        w = self.weight
        est = w * self._estimate + (1.0 - w) * x
        est[self._fresh] = x[self._fresh]
        self._estimate = est
        self._fresh[:] = False
        return est.copy()
