"""Joint order and unit tables between robot_spec (radians) and the GR1 SDKs' wire formats.

All hardware conversions live here, so a sign, order or unit mistake can only be in one file
(tests/test_gr1_mapping.py and the loopback tests check them against the SDK packets).

Arms, ``fourier-grx-client`` (zenoh, server port 7447)
    The server works on a 32-vector in **degrees**: legs 0-11, waist 12-14, head 15-17,
    left arm 18-24, right arm 25-31, each arm in the order shoulder pitch, roll, yaw, elbow pitch,
    wrist yaw, roll, pitch (RobotClient.move_joints docstring; DEFAULT_POSITIONS are rad2deg'd).
    Joint state topics ``<ns>/joint/position|velocity`` arrive in degrees and deg/s. Signs and zero
    positions are assumed to match the URDF that robot_spec was read from (the same vendor URDF).

Hands, ``fourier-dhx`` DexHand (raw UDP, control port 2333, query port 2334)
    ``set_angle(0, [index, middle, ring, little, thumb-1, thumb-2])`` takes actuator strokes,
    0 = open, growing as the finger closes, firmware limit 0..12. Fourier's own teleoperation stack
    (FFTAI/teleoperation configs/hand/fourier_dhx.yaml) maps the URDF joint ranges linearly to
    0..10.3, thumb-1 = thumb_proximal_pitch and thumb-2 = thumb_proximal_yaw, with the open end of
    every joint at 0. That is exactly ``stroke = full_stroke * robot_spec normalized closure``.
    ``get_angle()`` returns the same six values in the same unit.
    The hand has no sensors on the coupled joints; their state is computed from the couplings.
"""

from __future__ import annotations

import numpy as np

from recipe_common import robot_spec

GRX_NUM_JOINTS = 32

# robot_spec arm joint -> index in the GRX 32-vector (GRX name in the comment).
GRX_ARM_INDEX: dict[str, int] = {
    "left_shoulder_pitch_joint": 18,  # l_shoulder_pitch
    "left_shoulder_roll_joint": 19,  # l_shoulder_roll
    "left_shoulder_yaw_joint": 20,  # l_shoulder_yaw
    "left_elbow_pitch_joint": 21,  # l_elbow_pitch
    "left_wrist_yaw_joint": 22,  # l_wrist_yaw
    "left_wrist_roll_joint": 23,  # l_wrist_roll
    "left_wrist_pitch_joint": 24,  # l_wrist_pitch
    "right_shoulder_pitch_joint": 25,  # r_shoulder_pitch
    "right_shoulder_roll_joint": 26,  # r_shoulder_roll
    "right_shoulder_yaw_joint": 27,  # r_shoulder_yaw
    "right_elbow_pitch_joint": 28,  # r_elbow_pitch
    "right_wrist_yaw_joint": 29,  # r_wrist_yaw
    "right_wrist_roll_joint": 30,  # r_wrist_roll
    "right_wrist_pitch_joint": 31,  # r_wrist_pitch
}

# robot_spec hand actuated suffix -> slot in DexHand.set_angle/get_angle lists.
DEXHAND_SLOT: dict[str, int] = {
    "index_proximal": 0,  # index
    "middle_proximal": 1,  # middle
    "ring_proximal": 2,  # ring
    "pinky_proximal": 3,  # little
    "thumb_proximal_pitch": 4,  # thumb-1
    "thumb_proximal_yaw": 5,  # thumb-2
}
DEXHAND_FULL_STROKE = 10.3  # SDK units at the closed end of every joint (Fourier teleop config)

ARM_NAMES = robot_spec.arm_joint_names()
GRX_ARM_INDICES: list[int] = [GRX_ARM_INDEX[n] for n in ARM_NAMES]
# spec order (HAND_ACTUATED_SUFFIXES) -> SDK slot
_SPEC_TO_SLOT = np.array([DEXHAND_SLOT[s] for s in robot_spec.HAND_ACTUATED_SUFFIXES], dtype=np.intp)


def arm_rad_to_grx_deg(q_arm: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Arm targets (14,) radians in robot_spec order -> (GRX indices, degrees)."""
    q_arm = np.asarray(q_arm, dtype=np.float64)
    if q_arm.shape != (len(ARM_NAMES),):
        raise ValueError(f"arm targets have shape {q_arm.shape}, expected ({len(ARM_NAMES)},)")
    return list(GRX_ARM_INDICES), np.rad2deg(q_arm)


def grx_deg_to_arm_rad(v32: np.ndarray) -> np.ndarray:
    """GRX 32-vector (degrees or deg/s) -> arm values (14,) in radians, robot_spec order."""
    v32 = np.asarray(v32, dtype=np.float64)
    if v32.shape != (GRX_NUM_JOINTS,):
        raise ValueError(f"GRX state has shape {v32.shape}, expected ({GRX_NUM_JOINTS},)")
    return np.deg2rad(v32[GRX_ARM_INDICES])


def hand_rad_to_dexhand(q_hand: np.ndarray, hand: str = "fourier",
                        full_stroke: float = DEXHAND_FULL_STROKE) -> list[float]:
    """One hand's actuated targets (6,) radians, HAND_ACTUATED_SUFFIXES order -> set_angle list."""
    q_hand = np.asarray(q_hand, dtype=np.float64)
    if q_hand.shape != (robot_spec.NUM_HAND_ACTUATED_PER_SIDE,):
        raise ValueError(f"hand targets have shape {q_hand.shape}, expected (6,)")
    closure = np.clip(robot_spec.hand_rad_to_normalized(q_hand, hand), 0.0, 1.0)
    out = np.zeros(6)
    out[_SPEC_TO_SLOT] = closure * full_stroke
    return [float(v) for v in out]


def dexhand_to_hand_rad(values: list[float] | np.ndarray, hand: str = "fourier",
                        full_stroke: float = DEXHAND_FULL_STROKE) -> np.ndarray:
    """get_angle list (6,) in SDK order -> joint angles (6,) radians, HAND_ACTUATED_SUFFIXES order."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (6,):
        raise ValueError(f"DexHand reading has shape {v.shape}, expected (6,)")
    return robot_spec.hand_normalized_to_rad(v[_SPEC_TO_SLOT] / full_stroke, hand)


def coupled_from_actuated(q_hands: np.ndarray, hand: str = "fourier", offset: bool = True) -> np.ndarray:
    """Coupled joint values in hand_coupled_joint_names(hand) order from both hands' actuated (12,).

    q_u = k * q_a + b; with offset=False only k applies (for velocities).
    """
    q_hands = np.asarray(q_hands, dtype=np.float64).reshape(2, robot_spec.NUM_HAND_ACTUATED_PER_SIDE)
    spec = robot_spec.get_hand(hand)
    col = {s: i for i, s in enumerate(robot_spec.HAND_ACTUATED_SUFFIXES)}
    return np.array([c.k * q_hands[side, col[c.actuated_suffix]] + (c.b if offset else 0.0)
                     for side in range(2) for c in spec.couplings])
