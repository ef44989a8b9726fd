"""A stand-in "real robot": the recipe_sim twin with a hidden parameter overlay the tuner never reads.

Used by the tests, the benchmark and the CLI's ``--hidden-overlay`` mode. It runs the calibration targets
through ``recipe_sim.twin.SimTwin`` (its own MjData stepping loop, not the evaluator's rollout code), so
the tuner is checked against an independent path, and can add encoder noise like a real measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec

from .recording import Recording

# The default hidden "reality" for tests and the benchmark: clearly off the manufacturer model in
# gains, damping and finger coupling (names below are ModelParams paths).
DEFAULT_HIDDEN_OVERLAY: dict[str, Any] = {
    "joints": {
        "*_shoulder_*_joint": {"kp": 200.0 * 0.85},
        "*_elbow_pitch_joint": {"damping": 0.8 * 2.0},
    },
    "coupling": {
        "?_*_intermediate_joint": {"k": 0.975 * 1.08},
    },
}


def record_on_twin(
    targets: np.ndarray,
    hand: str = robot_spec.DEFAULT_HAND,
    overlay: Any = None,
    rate_hz: float = 10.0,
    noise_std: float = 0.0,
    seed: int = 0,
) -> Recording:
    """Play (N, T, 26) targets on a SimTwin (optionally with a hidden overlay) and record its joints."""
    from recipe_sim.twin import SimTwin

    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 3 or targets.shape[2] != robot_spec.ACTION_DIM:
        raise ValueError(f"targets must be (N, T, {robot_spec.ACTION_DIM}), got {targets.shape}")
    if isinstance(overlay, Path):
        overlay = str(overlay)
    twin = SimTwin(hand=hand, overlay=overlay, seed=seed)
    period = 1.0 / rate_hz
    substeps = round(period / twin.dt)
    if substeps < 1 or abs(substeps * twin.dt - period) > 0.02 * period:
        raise ValueError(f"rate {rate_hz} Hz is not a whole number of twin steps ({twin.dt} s)")
    n, t, _ = targets.shape
    measured = np.empty((n, t, len(twin.joint_names)))
    rng = np.random.default_rng(seed)
    for k in range(n):
        twin.reset(targets[k, 0])
        for i in range(t):
            measured[k, i] = twin.joint_positions()
            twin.set_targets(targets[k, i])
            twin.step(substeps)
    if noise_std > 0:
        measured = measured + rng.normal(0.0, noise_std, size=measured.shape)
    times = np.tile(np.arange(t) * period, (n, 1))
    return Recording(targets, measured, times, hand)
