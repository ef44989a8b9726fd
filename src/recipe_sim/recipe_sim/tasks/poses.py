"""Robot poses the tasks start from and scripted states are built from (IK on the palm sites).

The ready pose puts both palms above the table with the fingers pointing forward and the hands open:
the IK is position-only with a null-space pull towards an elbow-bent posture (recipe_sim.ik), which at
these targets leaves the palms facing each other. ``solve_palm_pose`` adds the orientation, for scripted
grasps that must approach an object with a known hand orientation (benchmark, tests).
"""

from __future__ import annotations

import mujoco
import numpy as np

from recipe_common import robot_spec
from recipe_sim.ik import solve_palm_position
from recipe_sim.model.builder import ModelIndex

SIDE_INDEX = {"left": 0, "right": 1}
# Elbow bent, forearm forward: the posture the IK null space is pulled toward.
PREFERRED_ARM = np.array([-0.5, 0.0, 0.0, -1.2, 0.0, 0.0, 0.0])
# Left -> right arm: roll and yaw joints change sign, pitch joints do not.
MIRROR = np.array([1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 1.0])


def arm_posture(side: str) -> np.ndarray:
    """The elbow-bent posture (7,) the IK null space is pulled towards, mirrored for the right arm."""
    return PREFERRED_ARM.copy() if side == "left" else PREFERRED_ARM * MIRROR


def set_coupled(model: mujoco.MjModel, data: mujoco.MjData, index: ModelIndex) -> None:
    """Put the coupled hand joints on their couplings q_u = k q_a + b (no constraint force at start)."""
    eq = model.eq_data[index.coupling_eq_ids]
    drivers = data.qpos[index.actuated_qpos_adr][index.coupling_actuated_index]
    data.qpos[index.coupled_qpos_adr] = eq[:, 0] + eq[:, 1] * drivers


def configured_left_palm() -> np.ndarray:
    """The left palm target of the ready pose, from config/tasks.yaml (world frame, m)."""
    from recipe_sim.model.scene import load_scene
    from recipe_sim.tasks.config import load_task_configs

    rp = load_task_configs().ready_pose
    return np.array([*rp.left_palm_xy, load_scene().table_top_height + rp.palm_height_above_table])


def ready_pose(model: mujoco.MjModel, index: ModelIndex, left_palm: np.ndarray) -> np.ndarray:
    """Actuated joint positions (26,): palms at ``left_palm`` and its y-mirror, hands open.

    Raises if the IK misses by more than 1 cm (the target is out of reach: fix config/tasks.yaml).
    """
    data = mujoco.MjData(model)
    q = np.concatenate([arm_posture("left"), arm_posture("right"), np.zeros(12)])
    lo, hi = robot_spec.actuated_limits(index.hand)
    data.qpos[index.actuated_qpos_adr] = np.clip(q, lo, hi)
    target = np.asarray(left_palm, dtype=np.float64)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        goal = target * np.array([1.0, sign, 1.0])
        _, err = solve_palm_position(model, data, index, side, goal, posture=arm_posture(side), iters=300)
        if err > 0.01:
            raise ValueError(
                f"ready pose: the {side} palm cannot reach {goal.tolist()} (IK error {err:.3f} m)"
            )
    out = data.qpos[index.actuated_qpos_adr].copy()
    n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
    open_rad = robot_spec.hand_normalized_to_rad(
        np.zeros((2, robot_spec.NUM_HAND_ACTUATED_PER_SIDE)), index.hand
    )
    out[n_arm:] = open_rad.reshape(-1)
    return out


def palm_frame(
    model: mujoco.MjModel, data: mujoco.MjData, index: ModelIndex, side: str
) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), rotation matrix (3, 3)) of a palm site after ``mj_kinematics``."""
    site = int(index.palm_sites[SIDE_INDEX[side]])
    mujoco.mj_kinematics(model, data)
    return data.site_xpos[site].copy(), data.site_xmat[site].reshape(3, 3).copy()


def solve_palm_pose(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    index: ModelIndex,
    side: str,
    pos: np.ndarray,
    rot: np.ndarray,
    iters: int = 300,
    rot_weight: float = 0.3,
    damping: float = 1e-2,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, float, float]:
    """Arm joints (7,) putting the palm at ``pos`` with orientation ``rot`` -> (q, pos err m, rot err rad).

    Damped least squares on the 6-D site Jacobian (rotation rows weighted by ``rot_weight`` m/rad).
    ``data.qpos`` is the start and holds the solution afterwards; joints are clipped to their limits
    (``limits``: the actuated (lower, upper) arrays, to save looking them up in a loop).
    """
    s = SIDE_INDEX[side]
    n = robot_spec.NUM_ARM_JOINTS_PER_SIDE
    arm = slice(s * n, (s + 1) * n)
    qadr, dadr = index.actuated_qpos_adr[arm], index.actuated_dof_adr[arm]
    lo, hi = robot_spec.actuated_limits(index.hand) if limits is None else limits
    site = int(index.palm_sites[s])
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    target_quat, cur_quat, err_quat = np.zeros(4), np.zeros(4), np.zeros(4)
    mujoco.mju_mat2Quat(target_quat, np.asarray(rot, dtype=np.float64).reshape(-1))
    e_pos, e_rot = np.inf, np.inf
    for _ in range(iters):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        dp = np.asarray(pos, dtype=np.float64) - data.site_xpos[site]
        mujoco.mju_mat2Quat(cur_quat, data.site_xmat[site])
        mujoco.mju_negQuat(err_quat, cur_quat)
        mujoco.mju_mulQuat(err_quat, target_quat, err_quat)
        dr = np.zeros(3)
        mujoco.mju_quat2Vel(dr, err_quat, 1.0)
        e_pos, e_rot = float(np.linalg.norm(dp)), float(np.linalg.norm(dr))
        if e_pos < 1e-4 and e_rot < 1e-3:
            break
        mujoco.mj_jacSite(model, data, jacp, jacr, site)
        jac = np.vstack([jacp[:, dadr], rot_weight * jacr[:, dadr]])
        err = np.concatenate([dp, rot_weight * dr])
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(6), err)
        data.qpos[qadr] = np.clip(data.qpos[qadr] + dq, lo[arm], hi[arm])
    mujoco.mj_kinematics(model, data)
    return data.qpos[qadr].copy(), e_pos, e_rot
