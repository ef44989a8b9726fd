"""Damped-least-squares inverse kinematics of one GR1 arm to place its palm site at a point.

Used to script starter "play" trajectories (task-aware initial states) and test poses; not a controller.
Position-only with a null-space pull toward a preferred posture, which keeps the elbow out and the
wrist near neutral instead of wandering through the 4 redundant DoF.
"""

from __future__ import annotations

import mujoco
import numpy as np

from recipe_common import robot_spec
from recipe_sim.model.builder import ModelIndex

SIDE_INDEX = {"left": 0, "right": 1}


def solve_palm_position(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    index: ModelIndex,
    side: str,
    target: np.ndarray,
    posture: np.ndarray | None = None,
    iters: int = 100,
    damping: float = 0.05,
    posture_gain: float = 0.05,
    tol: float = 1e-3,
) -> tuple[np.ndarray, float]:
    """Arm joint angles (7,) of ``side`` that put the palm site at ``target`` (world, m), and the residual.

    ``data.qpos`` provides the starting configuration and is left at the solution; other joints are not
    moved. The result is clipped to the joint limits at every iteration.
    """
    s = SIDE_INDEX[side]
    n = robot_spec.NUM_ARM_JOINTS_PER_SIDE
    arm = slice(s * n, (s + 1) * n)
    qadr = index.actuated_qpos_adr[arm]
    dadr = index.actuated_dof_adr[arm]
    lo, hi = robot_spec.actuated_limits(index.hand)
    lo, hi = lo[arm], hi[arm]
    site = int(index.palm_sites[s])
    q_pref = np.zeros(n) if posture is None else np.asarray(posture, np.float64)
    jacp = np.zeros((3, model.nv))
    err = np.inf
    for _ in range(iters):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        e = np.asarray(target, np.float64) - data.site_xpos[site]
        err = float(np.linalg.norm(e))
        if err < tol:
            break
        mujoco.mj_jacSite(model, data, jacp, None, site)
        j = jacp[:, dadr]
        jjt = j @ j.T + damping**2 * np.eye(3)
        dq = j.T @ np.linalg.solve(jjt, e)
        null = np.eye(n) - np.linalg.pinv(j) @ j
        dq += null @ (posture_gain * (q_pref - data.qpos[qadr]))
        data.qpos[qadr] = np.clip(data.qpos[qadr] + dq, lo, hi)
    mujoco.mj_kinematics(model, data)
    return data.qpos[qadr].copy(), err
