"""Perception's object position against the twin's truth over one trial: where and how far it is off.

A deploy on the twin fails where the same policy succeeds with the twin's true object position
(``--object-source truth``) only through what perception reported. The trial bags record both
(``/object_state`` and ``recipe_bringup.stack.TWIN_TRUTH_TOPIC``); this module lines them up. It takes
(stamp, position, status) rows already read from a bag, so it is tested without a bag or a running stack.

Each perception message is compared with the truth interpolated at its ``header.stamp`` (the depth frame's
capture time, so the error is the estimate's own, not its age), in the world frame. Phases split by the true
object height above where it started: ``table`` (within ``lift_m``) and ``lifted`` (the object in a hand,
where occlusion is worst).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recipe_common.ros.object_status import STATUS_NAMES, USABLE_STATUSES
from recipe_interfaces.msg import ObjectState

PHASES = ("table", "lifted")  # by the true object height: near its start, or lifted


@dataclass(frozen=True)
class Sample:
    """One message: ``stamp`` in seconds, ``position`` in the world frame (NaN when it has none)."""

    stamp: float
    position: np.ndarray
    status: int = ObjectState.STATUS_TRACKING


@dataclass
class TrialErrors:
    """Perception's error over one trial, per message with a truth to compare against."""

    t: np.ndarray  # (M,) seconds since the trial's start
    error: np.ndarray  # (M,) metres, NaN where the message carried no position
    status: np.ndarray  # (M,) status codes
    lifted: np.ndarray  # (M,) bool: the true object was above its start height + lift_m

    def phase_mask(self, phase: str) -> np.ndarray:
        """Messages of ``phase``: ``table`` (the true object near its start height) or ``lifted``."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        return self.lifted if phase == "lifted" else ~self.lifted

    def summary(self, far_m: float = 0.05) -> dict[str, Any]:
        """JSON-ready figures: status shares, error percentiles per phase, when first off by ``far_m``."""
        out: dict[str, Any] = {"messages": int(self.t.size)}
        for code, name in STATUS_NAMES.items():
            out[f"share_{name.lower()}"] = float(np.mean(self.status == code)) if self.t.size else 0.0
        for phase in PHASES:
            mask = self.phase_mask(phase)
            figures = error_figures([self.error[mask]])
            out[f"{phase}_messages"] = int(mask.sum())
            for key in ("median_m", "p95_m", "max_m"):
                out[f"{phase}_{key}"] = figures[key]
            no_position = ~np.isfinite(self.error[mask])
            out[f"{phase}_no_position"] = float(np.mean(no_position)) if mask.any() else 0.0
        far = np.flatnonzero(np.isfinite(self.error) & (self.error > far_m))
        out["far_m"] = float(far_m)
        out["first_far_s"] = float(self.t[far[0]]) if far.size else None
        return out


def error_figures(errors: Sequence[np.ndarray]) -> dict[str, Any]:
    """Median, 95th percentile and maximum of the finite errors of one or more trials pooled (None if none);
    ``errors`` counts the finite ones (a trial's ``summary`` counts every message as ``messages``, those
    without a position too). One definition for a trial's figures and a set of trials' figures."""
    e = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in errors] or [np.zeros(0)])
    e = e[np.isfinite(e)]
    return {"errors": int(e.size),
            "median_m": float(np.median(e)) if e.size else None,
            "p95_m": float(np.percentile(e, 95)) if e.size else None,
            "max_m": float(np.max(e)) if e.size else None}


def compare(perceived: Sequence[Sample], truth: Sequence[Sample], start: float | None = None,
            lift_m: float = 0.03) -> TrialErrors:
    """Line perception's messages up with the truth interpolated at their stamps. ``start``: when the trial
    began (a bag also holds the reset before it: the previous object, the parking spot); default the first
    truth sample. Messages before it or after the last truth sample are left out."""
    if len(truth) < 2:
        raise ValueError(f"need at least two truth samples, got {len(truth)} "
                         "(was the twin's truth recorded?)")
    tt = np.array([s.stamp for s in truth], dtype=np.float64)
    order = np.argsort(tt, kind="stable")
    tt = tt[order]
    tp = np.stack([np.asarray(truth[i].position, dtype=np.float64) for i in order])
    t0 = float(tt[0]) if start is None else float(start)
    start_z = float(np.interp(t0, tt, tp[:, 2]))
    rows = [s for s in perceived if max(t0, tt[0]) <= s.stamp <= tt[-1]]
    t = np.array([s.stamp for s in rows], dtype=np.float64)
    true_at = np.stack([np.interp(t, tt, tp[:, k]) for k in range(3)], axis=1) if rows else np.zeros((0, 3))
    pos = np.stack([np.asarray(s.position, dtype=np.float64) for s in rows]) if rows else np.zeros((0, 3))
    status = np.array([s.status for s in rows], dtype=int)
    usable = np.isin(status, USABLE_STATUSES) & np.all(np.isfinite(pos), axis=1)
    error = np.full(t.shape, np.nan)
    error[usable] = np.linalg.norm(pos[usable] - true_at[usable], axis=1)
    return TrialErrors(t=t - t0, error=error, status=status, lifted=true_at[:, 2] > start_z + lift_m)
