"""Calibration segments that separate the parameters: holds at several poses, fast steps, one joint at a time.

Broadband motion around one pose (calibration.py's multisine/chirp/filtered steps) leaves pairs of
parameters that act alike almost indistinguishable: near one pose the gravity sag of a joint is
g(q)/kp, and a zero offset shifts the joint by a constant, so a wrong kp plus an offset fit as well as the
right kp. Each segment here starts and ends at home and is built to break one such tie:

* ``hold``: move (raised cosine, ``ramp_s``) to a random pose within ``hold_amplitude_rad`` of home, hold
  it, move to a second pose, hold, return. The steady-state error at a hold is offset - g(q)/kp, and g
  differs between poses, so kp, link mass and the offsets separate; the hands hold two closures, which
  pins coupling k against b.
* ``steps``: a train of fast steps (raised-cosine transitions at the velocity bound) within
  ``arm_amplitude_rad`` of home: the step responses weigh stiffness and damping against inertia.
* ``isolation``: one arm joint (the same on both sides) and one hand joint go to both ends of their hold
  range and back while everything else holds home, so a parameter of one joint cannot be traded for a
  parameter of its neighbour.

Every segment is checked for clearance (table, body, other hand) on the model when a checker is given; a
segment that is not clear is drawn again, and after ``_DRAWS`` draws shrunk towards home until clear.
Sequences are segments back to back followed by ``settle_s`` at home. design.py chooses which segments
to play by how well they determine the parameters; ``segment_sequences`` here cycles the families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recipe_common import robot_spec

from .calibration import check_safe, home_pose, limit_box, num_samples, velocity_bounds
from .config import SEGMENT_FAMILIES, CalibrationConfig

if TYPE_CHECKING:
    from .clearance import ClearanceChecker

_DRAWS = 4  # fresh draws of a segment that is not clear before shrinking the last one
_POSE_DRAWS = 24  # random hold poses scored for gravity contrast per hold
_N_ARM = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
_N_HAND = robot_spec.NUM_HAND_ACTUATED_PER_SIDE


@dataclass(frozen=True)
class Segment:
    family: str
    targets: np.ndarray  # (S, 26) actuated order; first and last row are home


@dataclass(frozen=True)
class SegmentLayout:
    """How a sequence of T samples splits into segments: m segments of S samples, then home to the end
    (m: the whole segments of about segment_s that fit before settle_s; at least one, shortened)."""

    per_sequence: int
    length: int
    samples: int

    @classmethod
    def of(cls, cal: CalibrationConfig) -> SegmentLayout:
        total = num_samples(cal)
        settle = round(cal.settle_s * cal.command_rate_hz)
        m = max(1, round((cal.duration_s - cal.settle_s) / cal.segment_s))
        return cls(per_sequence=m, length=(total - settle) // m, samples=total)


def _blend(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """(n, 26) raised-cosine move from a (excluded) to b (included)."""
    w = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n + 1) / n)
    return a + w[:, None] * (b - a)


class SegmentMaker:
    """Draws safe segments of each family for one calibration config and hand."""

    def __init__(self, cal: CalibrationConfig, hand: str, clearance: ClearanceChecker | None = None):
        self.cal, self.hand, self.clearance = cal, hand, clearance
        self.layout = SegmentLayout.of(cal)
        self.home = home_pose(cal, hand)
        lo, hi = limit_box(cal, hand)
        hold_amp = np.full(robot_spec.ACTION_DIM, cal.hand_amplitude_rad)
        hold_amp[:_N_ARM] = cal.hold_amplitude_rad
        step_amp = np.full(robot_spec.ACTION_DIM, cal.hand_amplitude_rad)
        step_amp[:_N_ARM] = cal.arm_amplitude_rad
        self.hold_box = (np.maximum(lo, self.home - hold_amp), np.minimum(hi, self.home + hold_amp))
        self.step_box = (np.maximum(lo, self.home - step_amp), np.minimum(hi, self.home + step_amp))
        self.vmax = velocity_bounds(cal, hand)
        limits = robot_spec.joint_limits(hand)
        self.effort = np.array([limits[n].effort for n in robot_spec.arm_joint_names()])
        self.dt = 1.0 / cal.command_rate_hz
        self.ramp = max(2, round(cal.ramp_s * cal.command_rate_hz))

    # ---- helpers ----
    def _move_samples(self, a: np.ndarray, b: np.ndarray, minimum: int) -> int:
        """Samples for a raised-cosine move a -> b whose peak speed (pi/2 |b-a| / duration) is in bounds."""
        need = np.max(np.pi / 2 * np.abs(b - a) / (self.vmax * self.dt))
        return max(minimum, math.ceil(need))

    def _through(self, poses: list[np.ndarray], holds: list[int]) -> np.ndarray:
        """Home -> poses[0] (hold) -> poses[1] (hold) ... -> home, padded or cut to the segment length."""
        rows = [self.home[None]]
        current = self.home
        for pose, hold in zip(poses, holds, strict=True):
            rows.append(_blend(current, pose, self._move_samples(current, pose, self.ramp)))
            rows.append(np.repeat(pose[None], hold, axis=0))
            current = pose
        return self._fit_length(np.concatenate(rows))

    def _fit_length(self, body: np.ndarray) -> np.ndarray:
        """body + a move back home, then home: exactly S rows (an over-long body loses its end)."""
        s = self.layout.length
        while True:
            back = _blend(body[-1], self.home, self._move_samples(body[-1], self.home, self.ramp))
            if len(body) + len(back) <= s or len(body) == 1:
                break
            body = body[: max(1, s - len(back))]
        tail = np.repeat(self.home[None], s - len(body) - len(back), axis=0)
        return np.concatenate([body, back, tail])

    def _holds(self, n_poses: int) -> list[int]:
        moves = (n_poses + 1) * self.ramp
        each = max(1, (self.layout.length - 1 - moves) // n_poses)
        return [each] * n_poses

    # ---- families ----
    def _hold(self, rng: np.random.Generator) -> np.ndarray:
        first = self._gravity_pose(rng, self.home)
        return self._through([first, self._gravity_pose(rng, first)], self._holds(2))

    def _gravity_pose(self, rng: np.random.Generator, contrast: np.ndarray) -> np.ndarray:
        """The clear pose, of _POSE_DRAWS random ones in the hold box, whose gravity load differs most from
        the load at ``contrast`` (torques over effort limits, arm joints): holds there separate the sag
        g/kp from a constant offset. Without a checker (no model): the first draw."""
        lo, hi = self.hold_box
        draws = [rng.uniform(lo, hi) for _ in range(_POSE_DRAWS if self.clearance is not None else 1)]
        if self.clearance is None:
            return draws[0]
        ref = self.clearance.gravity_torques(contrast)[:_N_ARM]
        best, best_score = draws[0], -1.0
        for q in draws:
            if self.clearance.contacts(q[None]):
                continue
            score = float(np.sum(np.abs(self.clearance.gravity_torques(q)[:_N_ARM] - ref) / self.effort))
            if score > best_score:
                best, best_score = q, score
        return best

    def _isolation(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.hold_box
        n_arm, n_hand = robot_spec.NUM_ARM_JOINTS_PER_SIDE, _N_HAND
        arm_joint, hand_joint = int(rng.integers(n_arm)), int(rng.integers(n_hand))
        cols = [arm_joint, n_arm + arm_joint, _N_ARM + hand_joint, _N_ARM + n_hand + hand_joint]
        first, second = self.home.copy(), self.home.copy()
        order = rng.permutation(2)
        ends = np.stack([lo, hi])
        first[cols], second[cols] = ends[order[0], cols], ends[order[1], cols]
        return self._through([first, second], self._holds(2))

    def _steps(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.step_box
        rows = [self.home[None]]
        current = self.home
        used = 1
        while True:
            nxt = rng.uniform(lo, hi)
            move = self._move_samples(current, nxt, 3)  # fast: as short as the velocity bound allows
            hold = int(rng.integers(4, 9))
            if used + move + hold + self.ramp > self.layout.length:
                break
            rows += [_blend(current, nxt, move), np.repeat(nxt[None], hold, axis=0)]
            used += move + hold
            current = nxt
        return self._fit_length(np.concatenate(rows))

    # ---- public ----
    def make(self, family: str, rng: np.random.Generator) -> Segment:
        """One clear, safe segment of ``family`` (S rows, home to home)."""
        draw = {"hold": self._hold, "steps": self._steps, "isolation": self._isolation}[family]
        targets = draw(rng)
        if self.clearance is not None:
            for _ in range(_DRAWS - 1):
                if not self.clearance.contacts(targets, stride=2):
                    break
                targets = draw(rng)
            targets = self.clearance.shrink_until_clear(targets, self.home)[0]
        check_safe(targets, self.cal, self.hand)
        return Segment(family, targets)


def assemble(segments: list[Segment], layout: SegmentLayout, home: np.ndarray) -> np.ndarray:
    """(N, T, 26) sequences: ``layout.per_sequence`` segments each, then home to the end."""
    m = layout.per_sequence
    if len(segments) % m:
        raise ValueError(f"{len(segments)} segments do not fill sequences of {m}")
    out = np.repeat(home[None, None], len(segments) // m, axis=0).repeat(layout.samples, axis=1)
    for k in range(len(segments) // m):
        body = np.concatenate([s.targets for s in segments[k * m : (k + 1) * m]])
        out[k, : len(body)] = body
    return out


def segment_sequences(
    cal: CalibrationConfig,
    hand: str,
    seed: int,
    num_sequences: int,
    clearance: ClearanceChecker | None = None,
) -> np.ndarray:
    """(N, T, 26) sequences of segments, families cycled; sequence k depends only on (seed, k)."""
    families = [f for f in cal.signals if f in SEGMENT_FAMILIES]
    maker = SegmentMaker(cal, hand, clearance)
    m = maker.layout.per_sequence
    segments = [
        maker.make(
            families[(k * m + i) % len(families)], np.random.default_rng([int(seed) & 0xFFFFFFFF, k, i])
        )
        for k in range(num_sequences)
        for i in range(m)
    ]
    out = assemble(segments, maker.layout, maker.home)
    check_safe(out, cal, hand)
    return out
