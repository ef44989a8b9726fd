"""A scripted side grasp: joint targets that put a hand beside an upright object, close it and lift.

Used by the init-state play, the env
benchmark (a contact-rich grasp state) and the task tests (a physical success). The grasp's shape (palm
offset from the object centre, palm roll and yaw relative to the ready orientation, hand preshape during
the reach and the closed hand) comes from config/grasps.yaml (recipe_sim.tasks.grasps). The default,
``thumb_opposed``, was tuned on can_medium with the Fourier hand; much thinner or shorter objects may
need a grasp of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from recipe_common import robot_spec
from recipe_sim.model.builder import ModelIndex
from recipe_sim.tasks.grasps import SideGrasp, load_grasps
from recipe_sim.tasks.poses import SIDE_INDEX, palm_frame, set_coupled, solve_palm_pose


@dataclass(frozen=True)
class GraspPlan:
    approach: np.ndarray  # (26,) joint targets: palm beside the object, hand preshaped (open fingers)
    closed: np.ndarray  # (26,) same arm, hand closed
    lifted: np.ndarray  # (26,) closed hand, palm raised by the lift height


def plan_side_grasp(
    model: mujoco.MjModel,
    index: ModelIndex,
    ready_q: np.ndarray,
    obj_pos: np.ndarray,
    side: str = "left",
    closure: float | None = None,
    lift: float = 0.10,
    grasp: SideGrasp | None = None,
) -> GraspPlan:
    """Joint targets (radians, actuated order) for a side grasp of an upright object at ``obj_pos``.

    ``grasp`` defaults to config/grasps.yaml's default; ``closure`` (0..1) overrides how far its four
    fingers close. Raises ValueError if the palm cannot reach the grasp pose within 5 mm / 0.05 rad.
    """
    grasp = load_grasps().get() if grasp is None else grasp
    if closure is not None:
        grasp = grasp.with_finger_closure(closure)
    data = mujoco.MjData(model)
    data.qpos[index.actuated_qpos_adr] = ready_q
    set_coupled(model, data, index)
    _, ready_rot = palm_frame(model, data, index, side)
    rot = grasp.rotation(side) @ ready_rot
    offset = grasp.offset(side)
    s = SIDE_INDEX[side]
    n = robot_spec.NUM_ARM_JOINTS_PER_SIDE
    m = robot_spec.NUM_HAND_ACTUATED_PER_SIDE
    arm = slice(s * n, (s + 1) * n)
    hand = slice(2 * n + s * m, 2 * n + (s + 1) * m)

    def arm_at(target: np.ndarray) -> np.ndarray:
        q, e_pos, e_rot = solve_palm_pose(model, data, index, side, target, rot)
        if e_pos > 5e-3 or e_rot > 0.05:
            raise ValueError(
                f"{side} palm cannot reach {target.round(3).tolist()} with the {grasp.name!r} grasp "
                f"orientation (errors {e_pos:.4f} m, {e_rot:.3f} rad)"
            )
        return q

    approach = np.array(ready_q, dtype=np.float64).copy()
    approach[arm] = arm_at(np.asarray(obj_pos, dtype=np.float64) + offset)
    approach[hand] = robot_spec.hand_normalized_to_rad(grasp.preshape, index.hand)
    closed = approach.copy()
    closed[hand] = robot_spec.hand_normalized_to_rad(grasp.closure, index.hand)
    lifted = closed.copy()
    lifted[arm] = arm_at(np.asarray(obj_pos, dtype=np.float64) + offset + np.array([0.0, 0.0, lift]))
    return GraspPlan(approach=approach, closed=closed, lifted=lifted)


# The open-loop timing of a side grasp in policy steps (10 Hz): reach from the ready pose with the hand
# preshaped, close, carry to the goal. Perception's sim check replays it for a deterministic, repeatable
# motion in front of the cameras; the demonstrators of demo-initialised PPO are the closed-loop experts.
REACH_STEPS, CLOSE_STEPS, CARRY_STEPS = 10, 6, 14
SCRIPT_STEPS = REACH_STEPS + CLOSE_STEPS + CARRY_STEPS


def script_targets(ready_q: np.ndarray, grasp: GraspPlan, carry: np.ndarray, k: int) -> np.ndarray:
    """(26,) joint targets of policy step ``k`` of the open-loop side grasp (linear in joint space)."""
    if k < REACH_STEPS:
        return ready_q + (grasp.approach - ready_q) * (k + 1) / REACH_STEPS
    k -= REACH_STEPS
    if k < CLOSE_STEPS:
        return grasp.approach + (grasp.closed - grasp.approach) * (k + 1) / CLOSE_STEPS
    k -= CLOSE_STEPS
    if k < CARRY_STEPS:
        return grasp.closed + (carry - grasp.closed) * (k + 1) / CARRY_STEPS
    return carry.copy()
