"""A scripted side grasp: joint targets that put a hand around an upright object, close it and lift.

Used by the env benchmark (a contact-rich grasp state) and by the task tests (a physical success).
The palm keeps the ready pose's orientation (fingers forward, palm facing the midline) and goes to a
fixed offset from the object centre; the fingers then close around the object and the arm lifts.
The offset was found by a small search over offsets and closures on a 3 x 17 cm bottle with the
Fourier hand (7-8 finger contacts, lifted 10 cm); thinner or much shorter objects need another offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from recipe_sim import robot_spec
from recipe_sim.model.builder import ModelIndex
from recipe_sim.tasks.poses import SIDE_INDEX, palm_frame, set_coupled, solve_palm_pose

GRASP_PALM_OFFSET = np.array(
    [-0.03, 0.065, 0.01]
)  # palm minus object centre (m), left hand; y mirrored for right
GRASP_CLOSURE = 0.8  # normalized hand closure that wraps a 3 cm radius object


@dataclass(frozen=True)
class GraspPlan:
    approach: np.ndarray  # (26,) joint targets: palm beside the object, hand open
    closed: np.ndarray  # (26,) same arm, hand closed
    lifted: np.ndarray  # (26,) closed hand, palm raised by the lift height


def plan_side_grasp(
    model: mujoco.MjModel,
    index: ModelIndex,
    ready_q: np.ndarray,
    obj_pos: np.ndarray,
    side: str = "left",
    closure: float = GRASP_CLOSURE,
    lift: float = 0.10,
) -> GraspPlan:
    """Joint targets (radians, actuated order) for a side grasp of an upright object at ``obj_pos``.

    Raises if the palm cannot reach the grasp pose within 5 mm / 0.05 rad.
    """
    data = mujoco.MjData(model)
    data.qpos[index.actuated_qpos_adr] = ready_q
    set_coupled(model, data, index)
    _, rot = palm_frame(model, data, index, side)
    offset = GRASP_PALM_OFFSET * np.array([1.0, 1.0 if side == "left" else -1.0, 1.0])
    s = SIDE_INDEX[side]
    n = robot_spec.NUM_ARM_JOINTS_PER_SIDE
    m = robot_spec.NUM_HAND_ACTUATED_PER_SIDE
    arm = slice(s * n, (s + 1) * n)
    hand = slice(2 * n + s * m, 2 * n + (s + 1) * m)

    def arm_at(target: np.ndarray) -> np.ndarray:
        q, e_pos, e_rot = solve_palm_pose(model, data, index, side, target, rot)
        if e_pos > 5e-3 or e_rot > 0.05:
            raise ValueError(
                f"{side} palm cannot reach {target.round(3).tolist()} with the ready orientation "
                f"(errors {e_pos:.4f} m, {e_rot:.3f} rad)"
            )
        return q

    approach = np.array(ready_q, dtype=np.float64).copy()
    approach[arm] = arm_at(np.asarray(obj_pos, dtype=np.float64) + offset)
    closed = approach.copy()
    closed[hand] = robot_spec.hand_normalized_to_rad(np.full(m, closure), index.hand)
    lifted = closed.copy()
    lifted[arm] = arm_at(np.asarray(obj_pos, dtype=np.float64) + offset + np.array([0.0, 0.0, lift]))
    return GraspPlan(approach=approach, closed=closed, lifted=lifted)
