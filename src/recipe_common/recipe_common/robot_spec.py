"""The one source of truth for GR1 joint names, order, limits and the policy action mapping.

Every other module (sim, driver, policy, autotune) imports from here, so that a joint order bug
can only exist in one place. Values come from the manufacturer URDFs shipped in the
``fourier-robot-descriptions`` wheel (GR1T2 with Fourier 6-DoF or Inspire hands).

Conventions
-----------
* Arm targets are absolute joint positions in radians, 7 per arm, left arm first.
* Hand targets are normalized 0..1 per actuated hand joint (0 = open, 1 = closed), 6 per hand,
  left hand first, in the order ``HAND_ACTUATED_SUFFIXES``.
* The policy action vector is ``[left_arm(7), right_arm(7), left_hand(6), right_hand(6)]`` (26).
* Underactuated hand joints follow q_u = k * q_a + b (a MuJoCo joint equality); k and b default
  to the URDF ``<mimic>`` values and are tunable model parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Side = Literal["left", "right"]
SIDES: tuple[Side, Side] = ("left", "right")
HAND_PREFIX: dict[str, str] = {"left": "L", "right": "R"}

ARM_JOINT_SUFFIXES: tuple[str, ...] = (
    "shoulder_pitch",
    "shoulder_roll",
    "shoulder_yaw",
    "elbow_pitch",
    "wrist_yaw",
    "wrist_roll",
    "wrist_pitch",
)

# (lower, upper, effort Nm, velocity rad/s) from gr1t2_fourier_hand_6dof.urdf
_ARM_LIMITS: dict[str, tuple[float, float, float, float]] = {
    "left_shoulder_pitch_joint": (-2.79, 1.92, 38.46, 6.28),
    "left_shoulder_roll_joint": (-0.57, 2.53, 38.46, 6.28),
    "left_shoulder_yaw_joint": (-2.97, 2.97, 30.3, 5.24),
    "left_elbow_pitch_joint": (-2.27, 2.27, 30.3, 5.24),
    "left_wrist_yaw_joint": (-2.97, 2.97, 13.17, 16.55),
    "left_wrist_roll_joint": (-0.87, 0.96, 5.25, 15.08),
    "left_wrist_pitch_joint": (-0.61, 0.61, 5.25, 15.08),
    "right_shoulder_pitch_joint": (-2.79, 1.92, 38.46, 6.28),
    "right_shoulder_roll_joint": (-2.53, 0.57, 38.46, 6.28),
    "right_shoulder_yaw_joint": (-2.97, 2.97, 30.3, 5.24),
    "right_elbow_pitch_joint": (-2.27, 2.27, 30.3, 5.24),
    "right_wrist_yaw_joint": (-2.97, 2.97, 13.17, 16.55),
    "right_wrist_roll_joint": (-0.96, 0.87, 5.25, 15.08),
    "right_wrist_pitch_joint": (-0.61, 0.61, 5.25, 15.08),
}

HAND_ACTUATED_SUFFIXES: tuple[str, ...] = (
    "thumb_proximal_yaw",
    "thumb_proximal_pitch",
    "index_proximal",
    "middle_proximal",
    "ring_proximal",
    "pinky_proximal",
)


@dataclass(frozen=True)
class JointLimit:
    lower: float
    upper: float
    effort: float  # Nm (0 where the URDF gives none)
    velocity: float  # rad/s (0 where the URDF gives none)


@dataclass(frozen=True)
class HandActuated:
    """An actuated hand joint and the joint angles that normalized 0 (open) and 1 (closed) mean."""

    suffix: str
    lower: float
    upper: float
    open_rad: float
    closed_rad: float


@dataclass(frozen=True)
class Coupling:
    """q_underactuated = k * q_actuated + b (URDF mimic: multiplier k, offset b)."""

    underactuated_suffix: str
    actuated_suffix: str
    k: float
    b: float
    lower: float
    upper: float


@dataclass(frozen=True)
class HandSpec:
    name: str
    urdf: str  # file name inside fourier_robot_descriptions/assets/urdf
    actuated: tuple[HandActuated, ...]
    couplings: tuple[Coupling, ...]


_FOURIER = HandSpec(
    name="fourier",
    urdf="gr1t2_fourier_hand_6dof.urdf",
    actuated=(
        HandActuated("thumb_proximal_yaw", -1.696, 0.0, 0.0, -1.696),
        HandActuated("thumb_proximal_pitch", 0.0, 1.143, 0.0, 1.143),
        HandActuated("index_proximal", -1.592, 0.0, 0.0, -1.592),
        HandActuated("middle_proximal", -1.593, 0.0, 0.0, -1.593),
        HandActuated("ring_proximal", -1.593, 0.0, 0.0, -1.593),
        HandActuated("pinky_proximal", -1.592, 0.0, 0.0, -1.592),
    ),
    couplings=(
        Coupling("thumb_distal", "thumb_proximal_pitch", 1.06, 0.0, 0.0, 1.248),
        Coupling("index_intermediate", "index_proximal", 0.975, 0.0, -1.791, 0.0),
        Coupling("middle_intermediate", "middle_proximal", 0.975, 0.0, -1.792, 0.0),
        Coupling("ring_intermediate", "ring_proximal", 0.975, 0.0, -1.791, 0.0),
        Coupling("pinky_intermediate", "pinky_proximal", 0.975, 0.0, -1.791, 0.0),
    ),
)

_INSPIRE = HandSpec(
    name="inspire",
    urdf="gr1t2_inspire_hand.urdf",
    actuated=(
        HandActuated("thumb_proximal_yaw", -0.1, 1.3, -0.1, 1.3),
        HandActuated("thumb_proximal_pitch", -0.1, 0.6, -0.1, 0.6),
        HandActuated("index_proximal", 0.0, 1.7, 0.0, 1.7),
        HandActuated("middle_proximal", 0.0, 1.7, 0.0, 1.7),
        HandActuated("ring_proximal", 0.0, 1.7, 0.0, 1.7),
        HandActuated("pinky_proximal", 0.0, 1.7, 0.0, 1.7),
    ),
    couplings=(
        Coupling("thumb_intermediate", "thumb_proximal_pitch", 1.6, 0.0, 0.0, 0.8),
        Coupling("thumb_distal", "thumb_proximal_pitch", 2.4, 0.0, 0.0, 1.2),
        Coupling("index_intermediate", "index_proximal", 1.0, 0.0, 0.0, 1.7),
        Coupling("middle_intermediate", "middle_proximal", 1.0, 0.0, 0.0, 1.7),
        Coupling("ring_intermediate", "ring_proximal", 1.0, 0.0, 0.0, 1.7),
        Coupling("pinky_intermediate", "pinky_proximal", 1.0, 0.0, 0.0, 1.7),
    ),
)

HANDS: dict[str, HandSpec] = {"fourier": _FOURIER, "inspire": _INSPIRE}
DEFAULT_HAND = "fourier"

NUM_ARM_JOINTS_PER_SIDE = len(ARM_JOINT_SUFFIXES)
NUM_HAND_ACTUATED_PER_SIDE = len(HAND_ACTUATED_SUFFIXES)
ACTION_DIM = 2 * (NUM_ARM_JOINTS_PER_SIDE + NUM_HAND_ACTUATED_PER_SIDE)


def arm_joint_names(side: Side | None = None) -> list[str]:
    sides = SIDES if side is None else (side,)
    return [f"{s}_{j}_joint" for s in sides for j in ARM_JOINT_SUFFIXES]


def hand_actuated_joint_names(side: Side | None = None) -> list[str]:
    sides = SIDES if side is None else (side,)
    return [f"{HAND_PREFIX[s]}_{j}_joint" for s in sides for j in HAND_ACTUATED_SUFFIXES]


def hand_coupled_joint_names(hand: str = DEFAULT_HAND, side: Side | None = None) -> list[str]:
    sides = SIDES if side is None else (side,)
    spec = get_hand(hand)
    return [f"{HAND_PREFIX[s]}_{c.underactuated_suffix}_joint" for s in sides for c in spec.couplings]


def actuated_joint_names() -> list[str]:
    """Joint order of actuators, commands and the policy action: arms then hands, left first."""
    return arm_joint_names() + hand_actuated_joint_names()


def state_joint_names(hand: str = DEFAULT_HAND) -> list[str]:
    """All arm and hand joints the driver reports in JointState: actuated, then coupled."""
    return actuated_joint_names() + hand_coupled_joint_names(hand)


def get_hand(hand: str) -> HandSpec:
    try:
        return HANDS[hand]
    except KeyError:
        raise ValueError(f"unknown hand type {hand!r}; expected one of {sorted(HANDS)}") from None


def joint_limits(hand: str = DEFAULT_HAND) -> dict[str, JointLimit]:
    """Limits of every arm and hand joint, keyed by joint name."""
    out = {n: JointLimit(*v) for n, v in _ARM_LIMITS.items()}
    spec = get_hand(hand)
    for s in SIDES:
        p = HAND_PREFIX[s]
        for a in spec.actuated:
            out[f"{p}_{a.suffix}_joint"] = JointLimit(a.lower, a.upper, 0.0, 0.0)
        for c in spec.couplings:
            out[f"{p}_{c.underactuated_suffix}_joint"] = JointLimit(c.lower, c.upper, 0.0, 0.0)
    return out


def actuated_limits(hand: str = DEFAULT_HAND) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) arrays in actuated_joint_names() order, radians."""
    lim = joint_limits(hand)
    names = actuated_joint_names()
    return (np.array([lim[n].lower for n in names]), np.array([lim[n].upper for n in names]))


def hand_open_closed(hand: str = DEFAULT_HAND) -> tuple[np.ndarray, np.ndarray]:
    """Joint angles (6,) that normalized 0 and 1 map to, in HAND_ACTUATED_SUFFIXES order."""
    spec = get_hand(hand)
    return (np.array([a.open_rad for a in spec.actuated]), np.array([a.closed_rad for a in spec.actuated]))


def hand_normalized_to_rad(u: np.ndarray, hand: str = DEFAULT_HAND) -> np.ndarray:
    """Map normalized hand targets (..., 6) in [0, 1] to joint angles; values are clipped to [0, 1]."""
    open_, closed = hand_open_closed(hand)
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    return open_ + u * (closed - open_)


def hand_rad_to_normalized(q: np.ndarray, hand: str = DEFAULT_HAND) -> np.ndarray:
    open_, closed = hand_open_closed(hand)
    return (np.asarray(q, dtype=np.float64) - open_) / (closed - open_)


def action_to_joint_targets(action: np.ndarray, hand: str = DEFAULT_HAND) -> np.ndarray:
    """Policy action (..., 26) -> actuated joint position targets (..., 26) in radians.

    Arm entries are absolute radians (clipped to the joint limits), hand entries normalized 0..1.
    """
    a = np.asarray(action, dtype=np.float64)
    if a.shape[-1] != ACTION_DIM:
        raise ValueError(f"action has {a.shape[-1]} entries, expected {ACTION_DIM}")
    lo, hi = actuated_limits(hand)
    n_arm = 2 * NUM_ARM_JOINTS_PER_SIDE
    arm = np.clip(a[..., :n_arm], lo[:n_arm], hi[:n_arm])
    hands = a[..., n_arm:].reshape(*a.shape[:-1], 2, NUM_HAND_ACTUATED_PER_SIDE)
    hands = hand_normalized_to_rad(hands, hand).reshape(*a.shape[:-1], 2 * NUM_HAND_ACTUATED_PER_SIDE)
    return np.concatenate([arm, hands], axis=-1)


def joint_targets_to_action(q: np.ndarray, hand: str = DEFAULT_HAND) -> np.ndarray:
    """Inverse of action_to_joint_targets (no clipping)."""
    q = np.asarray(q, dtype=np.float64)
    n_arm = 2 * NUM_ARM_JOINTS_PER_SIDE
    hands = q[..., n_arm:].reshape(*q.shape[:-1], 2, NUM_HAND_ACTUATED_PER_SIDE)
    hands = hand_rad_to_normalized(hands, hand).reshape(*q.shape[:-1], 2 * NUM_HAND_ACTUATED_PER_SIDE)
    return np.concatenate([q[..., :n_arm], hands], axis=-1)


def side_action_mask(side: int | str) -> np.ndarray:
    """(26,) bool: the arm and hand entries of one side (0 / "left", 1 / "right") in the action vector."""
    i = SIDES.index(side) if isinstance(side, str) else int(side)
    mask = np.zeros(ACTION_DIM, dtype=bool)
    n_arm = 2 * NUM_ARM_JOINTS_PER_SIDE
    mask[i * NUM_ARM_JOINTS_PER_SIDE:(i + 1) * NUM_ARM_JOINTS_PER_SIDE] = True
    mask[n_arm + i * NUM_HAND_ACTUATED_PER_SIDE:n_arm + (i + 1) * NUM_HAND_ACTUATED_PER_SIDE] = True
    return mask


def action_bounds(hand: str = DEFAULT_HAND) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of a policy action (26,): arm joint limits (rad), 0..1 for the normalized hands."""
    lo, hi = actuated_limits(hand)
    lo, hi = lo.copy(), hi.copy()
    n_arm = 2 * NUM_ARM_JOINTS_PER_SIDE
    lo[n_arm:], hi[n_arm:] = 0.0, 1.0
    return lo, hi
