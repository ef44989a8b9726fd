"""Safe calibration motion: N sequences of 26-dim joint-position targets at the command rate.

Each sequence starts and ends at the (margin-clipped) home pose, stays inside a per-joint box (joint limits
minus a margin, intersected with an amplitude around home so the arms stay clear of the table and torso),
and respects per-joint velocity bounds at the command rate. The motion of joint j is

    q_j(t) = home_j + e(t) * (c_j - home_j + A_j * s_j(t)),   e in [0, 1],  s_j in [-1, 1]

with c_j, A_j the centre and half-width of the box, so q_j is a convex combination of home and a point of
the box and can never leave it; the deviation from home is then shrunk (again convex) until the discrete
velocity bound holds. s_j is a multisine, a chirp or a smoothed random step train (cycled over sequences) so
that both slow (gravity, offsets) and fast (gains, damping, armature) behaviour is excited.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from recipe_common import robot_spec

from .config import SEGMENT_FAMILIES, CalibrationConfig

if TYPE_CHECKING:
    from .clearance import ClearanceChecker


class UnsafeMotionError(ValueError):
    """A target sequence leaves the safe box or exceeds the velocity bound."""


def nominal_home(cal: CalibrationConfig) -> np.ndarray:
    """Configured home (26,): arms at 0 (hanging), hands at 0 unless set in calibration.home."""
    names = robot_spec.actuated_joint_names()
    return np.array([float(cal.home.get(n, 0.0)) for n in names])


def limit_box(cal: CalibrationConfig, hand: str) -> tuple[np.ndarray, np.ndarray]:
    """Joint limits shrunk by the margin (26,) x 2, actuated order."""
    lo, hi = robot_spec.actuated_limits(hand)
    lo_m, hi_m = lo + cal.margin_rad, hi - cal.margin_rad
    if np.any(lo_m >= hi_m):
        bad = [n for n, a, b in zip(robot_spec.actuated_joint_names(), lo_m, hi_m, strict=True) if a >= b]
        raise UnsafeMotionError(f"calibration.margin_rad {cal.margin_rad} leaves no range for {bad}")
    return lo_m, hi_m


def home_pose(cal: CalibrationConfig, hand: str) -> np.ndarray:
    """The safe home pose: the configured home clipped into the limits minus the margin."""
    lo, hi = limit_box(cal, hand)
    return np.clip(nominal_home(cal), lo, hi)


def motion_box(cal: CalibrationConfig, hand: str) -> tuple[np.ndarray, np.ndarray]:
    """Where each joint may go: limits minus margin, within the arm/hand amplitude of home."""
    lo, hi = limit_box(cal, hand)
    home = home_pose(cal, hand)
    n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
    amp = np.full(robot_spec.ACTION_DIM, cal.hand_amplitude_rad)
    amp[:n_arm] = cal.arm_amplitude_rad
    return np.maximum(lo, home - amp), np.minimum(hi, home + amp)


def velocity_bounds(cal: CalibrationConfig, hand: str) -> np.ndarray:
    """Max |dq/dt| per actuated joint (rad/s): a fraction of the URDF limit, or the hand bound."""
    limits = robot_spec.joint_limits(hand)
    out = []
    for name in robot_spec.actuated_joint_names():
        v = limits[name].velocity
        out.append(cal.max_velocity_fraction * v if v > 0 else cal.hand_max_velocity)
    return np.array(out)


def _envelope(t: np.ndarray, cal: CalibrationConfig) -> np.ndarray:
    """0 -> 1 (raised cosine over ramp_s), 1, 1 -> 0 (ending settle_s before the end), then 0."""
    end_motion = cal.duration_s - cal.settle_s
    e = np.ones_like(t)
    if cal.ramp_s > 0:
        rise = np.clip(t / cal.ramp_s, 0.0, 1.0)
        fall = np.clip((end_motion - t) / cal.ramp_s, 0.0, 1.0)
        e = 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))
    e[t >= end_motion] = 0.0
    e[0] = 0.0
    return e


def _normalize(s: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(s), axis=0, keepdims=True)
    return s / np.where(peak > 1e-12, peak, 1.0)


def _multisine(t: np.ndarray, n_joints: int, rng: np.random.Generator) -> np.ndarray:
    n_comp = 4
    freqs = rng.uniform(0.08, 1.0, size=(n_comp, n_joints))
    phases = rng.uniform(0.0, 2 * np.pi, size=(n_comp, n_joints))
    amps = 1.0 / (0.3 + freqs)  # more amplitude at low frequency keeps velocities moderate
    s = np.sum(amps[None] * np.sin(2 * np.pi * freqs[None] * t[:, None, None] + phases[None]), axis=1)
    return _normalize(s)


def _chirp(t: np.ndarray, n_joints: int, rng: np.random.Generator) -> np.ndarray:
    f0, f1 = 0.08, 1.2
    span = max(float(t[-1]), 1e-6)
    up = rng.random(n_joints) < 0.5
    a = np.where(up, f0, f1)
    b = np.where(up, f1, f0)
    phase0 = rng.uniform(0.0, 2 * np.pi, size=n_joints)
    tt = t[:, None]
    s = np.sin(2 * np.pi * (a * tt + (b - a) * tt**2 / (2 * span)) + phase0)
    return _normalize(s)


def _filtered_steps(t: np.ndarray, n_joints: int, rng: np.random.Generator) -> np.ndarray:
    dt = float(t[1] - t[0]) if len(t) > 1 else 0.1
    raw = np.zeros((len(t), n_joints))
    for j in range(n_joints):
        i = 0
        while i < len(t):
            hold = max(1, round(rng.uniform(0.8, 2.0) / dt))
            raw[i : i + hold, j] = rng.uniform(-1.0, 1.0)
            i += hold
    # critically damped second-order low-pass (time constant tau): smooth steps, no overshoot
    tau = 0.3
    alpha = dt / (tau + dt)
    y1 = np.zeros(n_joints)
    y2 = np.zeros(n_joints)
    out = np.empty_like(raw)
    for i in range(len(t)):
        y1 = y1 + alpha * (raw[i] - y1)
        y2 = y2 + alpha * (y1 - y2)
        out[i] = y2
    return _normalize(out)


_SIGNALS = {"multisine": _multisine, "chirp": _chirp, "filtered_steps": _filtered_steps}


def num_samples(cal: CalibrationConfig) -> int:
    return round(cal.duration_s * cal.command_rate_hz)


def generate_sequences(
    cal: CalibrationConfig,
    hand: str,
    seed: int,
    num_sequences: int | None = None,
    clearance: ClearanceChecker | None = None,
) -> np.ndarray:
    """(N, T, 26) joint-position targets (radians, actuated order), deterministic per (seed, index).

    Segment families (hold, steps, isolation) are built by segments.py; broadband signals here.
    With a ClearanceChecker, each sequence is shrunk towards home (per side) until no collision geom comes
    closer than its margin (see clearance.py); without one only limits and velocities are guaranteed.
    """
    n = cal.num_sequences if num_sequences is None else int(num_sequences)
    if n < 1:
        raise ValueError(f"num_sequences must be >= 1, got {n}")
    if cal.signals[0] in SEGMENT_FAMILIES:
        from .segments import segment_sequences  # segments.py builds on this module's safety helpers

        return segment_sequences(cal, hand, seed, n, clearance)
    steps = num_samples(cal)
    t = np.arange(steps) / cal.command_rate_hz
    home = home_pose(cal, hand)
    lo, hi = motion_box(cal, hand)
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    vmax = velocity_bounds(cal, hand)
    env = _envelope(t, cal)[:, None]
    out = np.empty((n, steps, robot_spec.ACTION_DIM))
    for k in range(n):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, k])
        kind = cal.signals[k % len(cal.signals)]
        s = _SIGNALS[kind](t, robot_spec.ACTION_DIM, rng)
        dev = env * (centre - home + half * s)
        speed = np.max(np.abs(np.diff(dev, axis=0)), axis=0) * cal.command_rate_hz if steps > 1 else 0 * vmax
        dev *= np.minimum(1.0, vmax / np.maximum(speed, 1e-12))
        out[k] = home + dev
        if clearance is not None:
            out[k] = clearance.shrink_until_clear(out[k], home)[0]
    check_safe(out, cal, hand)
    return out


def check_safe(targets: np.ndarray, cal: CalibrationConfig, hand: str, tol: float = 1e-9) -> None:
    """Raise UnsafeMotionError naming the joint if targets leave the limits-minus-margin or go too fast."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim == 2:
        targets = targets[None]
    if targets.ndim != 3 or targets.shape[-1] != robot_spec.ACTION_DIM:
        raise UnsafeMotionError(f"targets must be (N, T, {robot_spec.ACTION_DIM}), got {targets.shape}")
    if not np.all(np.isfinite(targets)):
        raise UnsafeMotionError("targets contain NaN or inf")
    names = robot_spec.actuated_joint_names()
    lo, hi = limit_box(cal, hand)
    below = targets < lo - tol
    above = targets > hi + tol
    if below.any() or above.any():
        j = int(np.argwhere(below | above)[0][-1])
        raise UnsafeMotionError(
            f"targets of {names[j]} leave [{lo[j]:.3f}, {hi[j]:.3f}] (limits minus margin)"
        )
    if targets.shape[1] > 1:
        speed = np.max(np.abs(np.diff(targets, axis=1)), axis=(0, 1)) * cal.command_rate_hz
        vmax = velocity_bounds(cal, hand)
        if np.any(speed > vmax * (1 + 1e-6) + tol):
            j = int(np.argmax(speed / vmax))
            raise UnsafeMotionError(
                f"targets of {names[j]} move at {speed[j]:.3f} rad/s, bound {vmax[j]:.3f}"
            )


def ramp(start: np.ndarray, goal: np.ndarray, max_velocity: float | np.ndarray, rate_hz: float) -> np.ndarray:
    """(M, 26) targets moving smoothly (raised cosine) from start to goal, peak speed <= max_velocity.

    Used to bring the robot home after a cancel; the first row is ``start`` (a hold), the last ``goal``.
    """
    start = np.asarray(start, dtype=np.float64)
    goal = np.asarray(goal, dtype=np.float64)
    if start.shape != goal.shape:
        raise ValueError(f"start {start.shape} and goal {goal.shape} differ in shape")
    vmax = np.broadcast_to(np.asarray(max_velocity, dtype=np.float64), start.shape)
    if np.any(vmax <= 0):
        raise ValueError("max_velocity must be positive")
    # raised cosine peak speed = pi/2 * distance / duration
    duration = float(np.max(np.pi / 2 * np.abs(goal - start) / vmax)) if start.size else 0.0
    steps = max(2, math.ceil(duration * rate_hz) + 1)
    phase = np.linspace(0.0, 1.0, steps)
    w = 0.5 - 0.5 * np.cos(np.pi * phase)
    return start + w[:, None] * (goal - start)
