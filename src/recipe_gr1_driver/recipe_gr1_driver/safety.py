"""Safety primitives between a joint-position target and the robot; pure numpy, no ROS.

Every command that reaches the robot passes through these pieces, so they are kept small and
free of I/O to make them exhaustively testable (see tests/test_safety*.py, which include
hypothesis property tests).

Units: radians for every actuated joint, arms and hands alike (the driver's own unit; hands are
*not* normalized here). Arrays are in ``robot_spec.actuated_joint_names()`` order (26 joints).

Pieces
------
* :class:`SafetyLimits`: joint limits shrunk by a margin, per-joint maximum velocity and a
  per-step cap, all derived from ``robot_spec`` (the URDF) plus configuration.
* :class:`SafetyFilter`: ``validate()`` rejects malformed commands (unknown or duplicate names,
  length mismatch, NaN/inf) with :class:`CommandRejected`; ``filter()`` clamps a target to the
  limits and rate-limits it relative to the previous safe command.
* :class:`Watchdog`: per-joint command age; expired joints are held where they are.
* :class:`EStop`: a latch that stays engaged until explicitly released.
* :class:`Ramp`: per-joint smooth blend from the held pose to a new source's targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recipe_common import robot_spec

# The safety settings' defaults, in one place: ``SafetyLimits.from_spec`` and the driver's configuration
# (``config.DriverConfig``; config/driver.yaml writes them out) take them from here.
ARM_MARGIN = 0.05  # rad taken off both ends of each arm joint range
HAND_MARGIN = 0.0  # rad taken off both ends of each hand joint range
ARM_VELOCITY_SCALE = 0.5  # fraction of the URDF velocity limit
ARM_MAX_VELOCITY = 4.0  # rad/s cap on top of the scaled URDF limit (2.0 slowed the wrists: docs/deploy.md)
HAND_MAX_VELOCITY = 3.0  # rad/s (the URDF gives none for the hands)
MAX_STEP = 0.05  # rad, cap on the change of one control step


class CommandRejected(ValueError):
    """A command was refused as a whole; nothing from it reaches the robot."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SafetyLimits:
    """Position window, velocity and per-step limits for the actuated joints.

    ``max_step`` caps the change of one control step regardless of ``dt``, so a stalled loop
    (large dt) cannot turn into a large jump.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray  # rad/s, > 0
    max_step: float  # rad per control step, > 0

    def __post_init__(self) -> None:
        n = len(self.names)
        for field in ("lower", "upper", "max_velocity"):
            arr = np.asarray(getattr(self, field), dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"SafetyLimits.{field} has shape {arr.shape}, expected ({n},)")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"SafetyLimits.{field} contains non-finite values")
            arr.setflags(write=False)
            object.__setattr__(self, field, arr)
        bad = [nm for nm, lo, hi in zip(self.names, self.lower, self.upper) if not lo < hi]
        if bad:
            raise ValueError(f"SafetyLimits: empty position window (margin too large?) for {bad}")
        if np.any(self.max_velocity <= 0):
            raise ValueError("SafetyLimits.max_velocity must be > 0 for every joint")
        if not (math.isfinite(self.max_step) and self.max_step > 0):
            raise ValueError(f"SafetyLimits.max_step must be a finite value > 0, got {self.max_step}")

    @classmethod
    def from_spec(
        cls,
        hand: str = robot_spec.DEFAULT_HAND,
        arm_margin: float = ARM_MARGIN,
        hand_margin: float = HAND_MARGIN,
        arm_velocity_scale: float = ARM_VELOCITY_SCALE,
        arm_max_velocity: float = ARM_MAX_VELOCITY,
        hand_max_velocity: float = HAND_MAX_VELOCITY,
        max_step: float = MAX_STEP,
    ) -> SafetyLimits:
        """Limits from the URDF values in robot_spec.

        Arm velocity = min(URDF velocity * arm_velocity_scale, arm_max_velocity); the hand joints
        have no URDF velocity, so ``hand_max_velocity`` applies to them. Margins are radians
        taken off both ends of each joint range.
        """
        for key, value in (("arm_margin", arm_margin), ("hand_margin", hand_margin)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite value >= 0, got {value}")
        for key, value in (
            ("arm_velocity_scale", arm_velocity_scale),
            ("arm_max_velocity", arm_max_velocity),
            ("hand_max_velocity", hand_max_velocity),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a finite value > 0, got {value}")
        names = robot_spec.actuated_joint_names()
        arm = set(robot_spec.arm_joint_names())
        lim = robot_spec.joint_limits(hand)
        lower, upper, vel = [], [], []
        for name in names:
            margin = arm_margin if name in arm else hand_margin
            lo, hi = lim[name].lower + margin, lim[name].upper - margin
            if not lo < hi:
                key = "arm_margin" if name in arm else "hand_margin"
                raise ValueError(f"{key}={margin} leaves no range for {name} "
                                 f"([{lim[name].lower}, {lim[name].upper}])")
            lower.append(lo)
            upper.append(hi)
            if name in arm:
                urdf_v = lim[name].velocity
                v = min(urdf_v * arm_velocity_scale, arm_max_velocity) if urdf_v > 0 else arm_max_velocity
            else:
                v = hand_max_velocity
            vel.append(v)
        return cls(tuple(names), np.array(lower), np.array(upper), np.array(vel), float(max_step))

    def clip(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)


class SafetyFilter:
    """Validates commands and turns any target into a safe next command."""

    def __init__(self, limits: SafetyLimits, passive_names: Sequence[str] = ()) -> None:
        self.limits = limits
        self._index = {n: i for i, n in enumerate(limits.names)}
        self._passive = frozenset(passive_names)

    @property
    def size(self) -> int:
        return len(self.limits.names)

    def validate(self, names: Sequence[str], positions: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Check a (possibly partial) named command; return (joint indices, positions).

        Raises CommandRejected naming the problem; a rejected command is dropped entirely, never
        partially applied, because a half-applied arm pose can be worse than none.
        """
        names = list(names)
        try:
            values = np.asarray(positions, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise CommandRejected(f"positions are not numbers: {exc}") from None
        if not names:
            raise CommandRejected("command has no joint names")
        if len(values) != len(names):
            raise CommandRejected(f"command has {len(names)} names but {len(values)} positions")
        if not all(isinstance(n, str) for n in names):
            raise CommandRejected("joint names must be strings")
        seen: set[str] = set()
        dupes = sorted({n for n in names if n in seen or seen.add(n)})
        if dupes:
            raise CommandRejected(f"duplicate joint names: {dupes}")
        passive = [n for n in names if n in self._passive]
        if passive:
            raise CommandRejected(f"joints are coupled (not actuated) and cannot be commanded: {passive}")
        unknown = [n for n in names if n not in self._index]
        if unknown:
            shown = unknown[:5] + (["..."] if len(unknown) > 5 else [])
            raise CommandRejected(f"unknown joint names: {shown}")
        bad = ~np.isfinite(values)
        if np.any(bad):
            detail = ", ".join(f"{n}={v}" for n, v, b in zip(names, values, bad) if b)
            raise CommandRejected(f"non-finite positions: {detail}")
        return np.array([self._index[n] for n in names], dtype=np.intp), values

    def step_limits(self, dt: float) -> np.ndarray:
        """Largest allowed change per joint for a step of ``dt`` seconds (0 for a bad dt)."""
        try:
            dt = float(dt)
        except (TypeError, ValueError):
            return np.zeros(self.size)
        if not (math.isfinite(dt) and dt > 0):
            return np.zeros(self.size)
        with np.errstate(over="ignore"):  # a huge dt overflows to inf, which max_step then bounds
            return np.minimum(self.limits.max_velocity * dt, self.limits.max_step)

    def filter(self, target: np.ndarray, current: np.ndarray, dt: float) -> np.ndarray:
        """Next safe command from ``target``, given the previous safe command ``current``.

        Guarantees, for any target and dt (including NaN/inf, which hold that joint):
        the result lies within [lower, upper], and when ``current`` is within the limits the
        change per joint is at most ``step_limits(dt)``. A ``current`` outside the limits is
        first clipped into them (the controller never produces one; see SafetyController.reset).
        """
        target = np.asarray(target, dtype=np.float64)
        current = np.asarray(current, dtype=np.float64)
        if target.shape != (self.size,) or current.shape != (self.size,):
            raise ValueError(f"filter expects ({self.size},) arrays, got {target.shape} and {current.shape}")
        if not np.all(np.isfinite(current)):
            raise ValueError("filter: current command is non-finite; there is no safe reference")
        lo, hi = self.limits.lower, self.limits.upper
        base = np.clip(current, lo, hi)
        wanted = np.clip(np.where(np.isfinite(target), target, base), lo, hi)
        step = self.step_limits(dt)
        return np.clip(np.clip(wanted, base - step, base + step), lo, hi)


class Watchdog:
    """Per-joint command freshness: a joint is alive while fed within ``timeout`` seconds."""

    def __init__(self, timeout: float, size: int = 1) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"watchdog timeout must be a finite value > 0, got {timeout}")
        self.timeout = float(timeout)
        self._last = np.full(size, -np.inf)

    def feed(self, now: float, indices: np.ndarray | Sequence[int] | None = None) -> None:
        if indices is None:
            self._last[:] = now
        else:
            self._last[np.asarray(indices, dtype=np.intp)] = now

    def alive(self, now: float) -> np.ndarray:
        return (now - self._last) <= self.timeout

    def expired(self, now: float) -> bool:
        """True when no joint has been fed within the timeout."""
        return not bool(np.any(self.alive(now)))

    def age(self, now: float) -> float:
        """Seconds since the most recent feed of any joint (inf if never fed)."""
        return float(now - np.max(self._last))


class EStop:
    """Emergency-stop latch: once engaged it holds until release() is called."""

    def __init__(self) -> None:
        self._engaged = False
        self.reason = ""
        self.engage_count = 0

    @property
    def engaged(self) -> bool:
        return self._engaged

    def engage(self, reason: str = "") -> bool:
        """Engage; returns True if this call changed the state."""
        changed = not self._engaged
        self._engaged = True
        if changed:
            self.reason = reason or "engaged"
            self.engage_count += 1
        return changed

    def release(self) -> bool:
        """Release; returns True if this call changed the state."""
        changed = self._engaged
        self._engaged = False
        self.reason = ""
        return changed


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0..1 blend with zero slope at both ends, so a ramp starts and ends without a velocity kick."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class Ramp:
    """Per-joint fade of the gap between the pose a joint holds and a new command source's target.

    Started for the joints a new command source takes over, so a policy that starts (or resumes after a
    watchdog hold or an e-stop release) far from the current pose moves there smoothly instead of at the
    rate limit. The ramp fades out the *offset* between the held pose and the source's first target
    (output = target + (1 - s(t)) * offset): with a still target this is the plain blend from the held
    pose to the target; with a moving one (a policy that starts where the robot is and moves on) the
    motion passes through at full speed while only the initial gap is eased in. Blending towards a moving
    target instead slowed every motion of the first ramp_time, which a policy trained without a ramp does
    not expect (a diffusion generalist on the twin: 3/8 trials with the blend, 6/8 with a 0.1 s ramp).
    """

    def __init__(self, duration: float, size: int) -> None:
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"ramp duration must be a finite value >= 0, got {duration}")
        self.duration = float(duration)
        self._start = np.zeros(size)
        self._offset = np.zeros(size)
        self._anchor = np.zeros(size, dtype=bool)  # offset taken at the first apply after start
        self._t0 = np.full(size, -np.inf)

    def start(self, indices: np.ndarray | Sequence[int], start_pose: np.ndarray, now: float) -> None:
        idx = np.asarray(indices, dtype=np.intp)
        self._start[idx] = np.asarray(start_pose, dtype=np.float64)[idx]
        self._anchor[idx] = True
        self._t0[idx] = now

    def active(self, now: float) -> np.ndarray:
        return (now - self._t0) < self.duration

    def apply(self, target: np.ndarray, now: float) -> np.ndarray:
        target = np.asarray(target, dtype=np.float64)
        if self.duration == 0:
            return target.copy()
        if self._anchor.any():
            self._offset[self._anchor] = self._start[self._anchor] - target[self._anchor]
            self._anchor[:] = False
        fade = 1.0 - smoothstep((now - self._t0) / self.duration)
        return target + fade * self._offset
