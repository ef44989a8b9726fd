"""A stand-in "real robot": the recipe_sim twin with a hidden parameter overlay the tuner never reads.

Used by the tests, the benchmark and the CLI's ``--hidden-overlay`` mode. It runs the calibration targets
through ``recipe_sim.twin.SimTwin`` (its own MjData stepping loop, not the evaluator's rollout code), so
the tuner is checked against an independent path, and can add encoder noise like a real measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec

from .recording import Recording
from .space import ParameterSpace
from .stopping import StopFn, check, never

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


# The "real robot" of issue 19: a twin nobody tuned for, with other joints and directions than the default
# one (the space's parameter values in comments).
ISSUE19_HIDDEN_OVERLAY: dict[str, Any] = {
    "joints": {
        "*_elbow_pitch_joint": {"kp": 150.0 * 0.8},  # elbow_kp 0.8
        "*_wrist_roll_joint": {"kp": 30.0 * 1.33},  # wrist_roll_pitch_kp 1.33
        "*_wrist_pitch_joint": {"kp": 30.0 * 1.33},
        "*_shoulder_*_joint": {"damping": 1.0 * 1.7},  # shoulder_damping 1.7
    },
    "coupling": {"?_thumb_distal_joint": {"k": 1.06 * 0.896}},  # thumb_coupling_k 0.896
}


@dataclass(frozen=True)
class HiddenRobot:
    """A benchmark "real robot": an overlay and, for every free parameter, its true value."""

    name: str
    overlay: dict[str, Any]
    true_values: dict[str, float]


def hidden_robots(space: ParameterSpace, base: Any, seed: int = 0, count: int = 5) -> list[HiddenRobot]:
    """The adversarial robot, the issue-19 one, then ``count`` with every free parameter drawn uniformly
    in its (normalized) range.

    ``space`` is the space of the run (locked parameters keep their lock value in ``base``: a lock says
    the robot has that value). Adversarial: only the elbow gain differs (x0.7), which near one pose looks
    exactly like a zero offset of both elbows (true offsets 0).
    """
    free = space.free()
    robots = []
    manufacturer = free.manufacturer_values(base)
    for name, changes in (
        ("adversarial", {"elbow_kp": 0.7}),
        (
            "issue19",
            {
                "elbow_kp": 0.8,
                "wrist_roll_pitch_kp": 1.33,
                "shoulder_damping": 1.7,
                "thumb_coupling_k": 0.896,
            },
        ),
    ):
        x = manufacturer.copy()
        for param, value in changes.items():
            if param in free.names:
                x[free.names.index(param)] = value
        robots.append(HiddenRobot(name, free.overlay_dict(x, base), free.describe(x)))
    rng = np.random.default_rng(seed)
    for k in range(count):
        x = free.from_unit(rng.uniform(0.0, 1.0, free.dim))
        robots.append(HiddenRobot(f"random{k}", free.overlay_dict(x, base), free.describe(x)))
    return robots


def record_on_twin(
    targets: np.ndarray,
    hand: str = robot_spec.DEFAULT_HAND,
    overlay: Any = None,
    rate_hz: float = 10.0,
    noise_std: float = 0.0,
    seed: int = 0,
    should_stop: StopFn = never,
) -> Recording:
    """Play (N, T, 26) targets on a SimTwin (optionally with a hidden overlay) and record its joints.

    ``should_stop`` is polled once a simulated second; stopping raises stopping.Cancelled.
    """
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
            if i % round(rate_hz) == 0:
                check(should_stop)
            measured[k, i] = twin.joint_positions()
            twin.set_targets(targets[k, i])
            twin.step(substeps)
    if noise_std > 0:
        measured = measured + rng.normal(0.0, noise_std, size=measured.shape)
    times = np.tile(np.arange(t) * period, (n, 1))
    return Recording(targets, measured, times, hand)
