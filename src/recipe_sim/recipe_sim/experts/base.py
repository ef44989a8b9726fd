"""What every closed-loop scripted expert shares: reading the world state, palm IK, phases, joint-space moves.

An expert maps the current state of each env (object pose, joint positions, fingertips, the task's goal and
stage) to a (N, 26) action in the robot_spec convention, every policy step. It keeps no clock: a per-env
*phase* (reach, close, carry, ...) advances when the state says so (the palm arrived, the fingers stopped,
the object is held) and falls back when it says otherwise (the object slipped out or was pushed away). Every
target is recomputed from the current object pose, so a pushed object is followed, and the expert can label
any state a learner visits (DAgger).

The expert reads the simulator's true state (as the critic does): it is a privileged teacher. Its actions
go through the env's action pipeline like a policy's (noise, lag), so demonstrations live in the training
randomization.

Arm motion: towards the phase's target joint configuration ``q*`` along a straight line in joint space,
at most ``arm_step`` rad per step away from the measured joints (``a = q + clip(q* - q)``); within that
distance the target itself is sent, so a squeeze or a grasp gets the full PD force. Hand targets are sent
directly (the PD closes the fingers in a few steps).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import torch

from recipe_common import robot_spec
from recipe_sim.tasks.poses import palm_frame, set_coupled, solve_palm_pose

N_ARM_SIDE = robot_spec.NUM_ARM_JOINTS_PER_SIDE
N_HAND_SIDE = robot_spec.NUM_HAND_ACTUATED_PER_SIDE
N_ARM = 2 * N_ARM_SIDE
SIDES = ("left", "right")
# A palm pose the IK misses by more is unreachable. Looser than the planner's 5 mm / 0.05 rad
# (tasks/scripted.py): grasps low on the table (a 5 cm cube) come within 5 mm / 0.07 rad, which holds as well.
IK_POS_TOL = 8e-3  # m
IK_ROT_TOL = 0.12  # rad
CACHE_POS = 1e-3  # m: a palm target this close to the last one reuses its IK answer
CACHE_ROT = 1e-2


def arm_slice(side: int) -> slice:
    return slice(side * N_ARM_SIDE, (side + 1) * N_ARM_SIDE)


def hand_slice(side: int) -> slice:
    return slice(N_ARM + side * N_HAND_SIDE, N_ARM + (side + 1) * N_HAND_SIDE)


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quat_yaw(quat: np.ndarray) -> np.ndarray:
    """(N,) yaw (rad about world z) of (N, 4) wxyz quaternions."""
    w, x, y, z = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_axis_z(quat: np.ndarray) -> np.ndarray:
    """(3,) the local z axis of a wxyz unit quaternion in the world frame."""
    w, x, y, z = quat
    return np.array([2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y)])


@dataclass
class WorldState:
    """The batched state an expert acts on (numpy, world frame, true simulator values)."""

    q: np.ndarray  # (N, 26) actuated joint positions, rad
    qd: np.ndarray  # (N, 26)
    obj_pos: np.ndarray  # (N, 3)
    obj_quat: np.ndarray  # (N, 4) wxyz
    palms: np.ndarray  # (N, 2, 3) [left, right]
    tips: np.ndarray  # (N, 2, 4, 3) [left/right] x [thumb, index, middle, ring]
    goal: np.ndarray  # (N, 3) the goal the policy observes
    rest_z: np.ndarray  # (N,) object centre height at rest on the table
    clock: np.ndarray  # (N,) policy steps into the episode (only used to notice resets)

    @classmethod
    def of(cls, env: Any) -> WorldState:
        ph, idx = env.physics, env.index
        oa = idx.object_qpos_adr
        quat = ph.qpos[:, oa + 3 : oa + 7].copy()
        quat /= np.maximum(np.linalg.norm(quat, axis=1, keepdims=True), 1e-9)
        return cls(
            q=ph.qpos[:, idx.actuated_qpos_adr].copy(),
            qd=ph.qvel[:, idx.actuated_dof_adr].copy(),
            obj_pos=ph.qpos[:, oa : oa + 3].copy(),
            obj_quat=quat,
            palms=ph.palms().copy(),
            tips=ph.tips().copy(),
            goal=env.task.goal.numpy().astype(np.float64),
            rest_z=env.task.rest_z.numpy().astype(np.float64),
            clock=env.episode_length_buf.cpu().numpy().astype(int),
        )


class PalmIK:
    """Palm-pose IK of either arm on the env's kinematics, warm-started per (env, side) from the last answer.

    A target that moved a few millimetres since the last call converges in a few iterations, so the experts
    can afford to re-solve every step for every env.
    """

    def __init__(self, model: mujoco.MjModel, index: Any, ready_q: np.ndarray, num_envs: int) -> None:
        self.model, self.index = model, index
        self.data = mujoco.MjData(model)
        self.ready_q = np.asarray(ready_q, dtype=np.float64)
        self.data.qpos[index.actuated_qpos_adr] = self.ready_q
        set_coupled(model, self.data, index)
        self.ready_rot = [palm_frame(model, self.data, index, s)[1] for s in SIDES]
        self.ready_palm = [palm_frame(model, self.data, index, s)[0] for s in SIDES]
        self._warm = np.tile(self.ready_q, (num_envs, 1))
        self.limits = robot_spec.actuated_limits(index.hand)
        # Last answer per (env, side): target pose, joints, ok. A target within CACHE_POS/CACHE_ROT of it
        # gets the same answer without solving (a resting object, a held pose).
        self._last_pos = np.full((num_envs, 2, 3), np.inf)
        self._last_rot = np.zeros((num_envs, 2, 3, 3))
        self._last_q = np.zeros((num_envs, 2, N_ARM_SIDE))
        self._last_ok = np.zeros((num_envs, 2), dtype=bool)

    def reset(self, env_ids: np.ndarray) -> None:
        self._warm[env_ids] = self.ready_q
        self._last_pos[env_ids] = np.inf

    def solve(self, env_id: int, side: int, pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, bool]:
        """Arm joints (7,) putting palm ``side`` at ``pos`` with orientation ``rot``; ok False if out of reach
        (the joints are then the nearest the solver got)."""
        if (np.max(np.abs(pos - self._last_pos[env_id, side])) < CACHE_POS
                and np.max(np.abs(rot - self._last_rot[env_id, side])) < CACHE_ROT):
            return self._last_q[env_id, side].copy(), bool(self._last_ok[env_id, side])
        d, idx = self.data, self.index
        q, ok = np.zeros(N_ARM_SIDE), False
        # From the last answer first (a few iterations when the target moved a little), else from the ready
        # pose (a warm start near a joint limit can stall where a fresh one succeeds).
        for start in (self._warm[env_id], self.ready_q):
            d.qpos[idx.actuated_qpos_adr] = start
            q, e_pos, e_rot = solve_palm_pose(self.model, d, idx, SIDES[side], pos, rot, iters=150,
                                              limits=self.limits)
            ok = e_pos <= IK_POS_TOL and e_rot <= IK_ROT_TOL
            if ok:
                break
        if ok:
            self._warm[env_id, arm_slice(side)] = q
        self._last_pos[env_id, side], self._last_rot[env_id, side] = pos, rot
        self._last_q[env_id, side], self._last_ok[env_id, side] = q, ok
        return q, ok


def move_towards(q: np.ndarray, target: np.ndarray, max_step: float) -> np.ndarray:
    """``q`` moved towards ``target`` along the straight joint-space line, at most ``max_step`` per joint."""
    delta = target - q
    biggest = float(np.max(np.abs(delta))) if delta.size else 0.0
    if biggest <= max_step:
        return target.copy()
    return q + delta * (max_step / biggest)


class Expert(ABC):
    """A closed-loop scripted expert for one task kind, driving every env of a RecipeVecEnv.

    ``act(obs)`` (also ``expert(obs)``) returns (N, 26) float32 actions for the env's current state; the
    observation argument is accepted for the policy signature and not used (the expert reads the env).
    ``reset(env_ids)`` starts the phase machine of those envs afresh (also done automatically when an env
    starts a new episode). ``phase`` holds each env's phase index into ``PHASES``.
    """

    kind: str = ""
    PHASES: tuple[str, ...] = ()

    def __init__(self, env: Any, arm_step: float = 0.12) -> None:
        task_kind = getattr(getattr(env, "task_cfg", None), "kind", None)
        if task_kind != self.kind:
            raise ValueError(f"{type(self).__name__} drives {self.kind!r} envs, not {task_kind!r}")
        self.env = env
        self.num_envs = int(env.num_envs)
        self.hand = env.hand
        self.arm_step = float(arm_step)
        self.ready_q = np.asarray(env.ready_q, dtype=np.float64)
        self.ik = PalmIK(env.physics.models[0], env.index, self.ready_q, self.num_envs)
        self.phase = np.zeros(self.num_envs, dtype=int)
        self.dwell = np.zeros(self.num_envs, dtype=int)  # steps spent in the current phase
        self._last_clock = np.full(self.num_envs, -1)
        self._last_anchor = np.full((self.num_envs, 3), np.nan)
        self._needs_reset = np.ones(self.num_envs, dtype=bool)
        self._changed = np.zeros(self.num_envs, dtype=bool)

    # --- interface ------------------------------------------------------------------------------------

    def reset(self, env_ids: np.ndarray | list[int] | None = None) -> None:
        """Forget the phase of ``env_ids`` (all when None): the next ``act`` starts them from their state."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=int).reshape(-1)
        self._needs_reset[ids] = True

    def act(self, obs: Any = None) -> torch.Tensor:
        return torch.as_tensor(robot_spec.joint_targets_to_action(self.joint_targets(), self.hand),
                               dtype=torch.float32)

    __call__ = act

    def joint_targets(self) -> np.ndarray:
        """(N, 26) joint targets (rad) for every env's current state."""
        s = WorldState.of(self.env)
        anchor = self.env.task.anchor.numpy()
        moved_anchor = np.any(np.abs(anchor - self._last_anchor) > 1e-9, axis=1)
        new_episode = (s.clock < self._last_clock) | moved_anchor
        fresh = np.flatnonzero(self._needs_reset | new_episode)
        if fresh.size:
            self.ik.reset(fresh)
            self.phase[fresh] = 0
            self.dwell[fresh] = 0
            self._start(fresh, s)
            self._needs_reset[fresh] = False
        self._last_clock = s.clock.copy()
        self._last_anchor = anchor.copy()
        out = np.empty((self.num_envs, robot_spec.ACTION_DIM))
        self._changed = np.zeros(self.num_envs, dtype=bool)
        for i in range(self.num_envs):
            out[i] = self._desired(i, s)
        self.dwell[~self._changed] += 1
        return out

    @property
    def phase_names(self) -> list[str]:
        return [self.PHASES[p] for p in self.phase]

    # --- per task -------------------------------------------------------------------------------------

    def _start(self, env_ids: np.ndarray, s: WorldState) -> None:  # noqa: B027 (optional hook)
        """Per-episode setup of new episodes (which hand, which grasp); phases are already 0."""

    @abstractmethod
    def _desired(self, i: int, s: WorldState) -> np.ndarray:
        """(26,) joint targets of env ``i`` now; may change ``self.phase[i]``."""

    # --- helpers for subclasses -----------------------------------------------------------------------

    def set_phase(self, i: int, name: str) -> None:
        """Enter phase ``name`` (its dwell counter starts at 0 on this step)."""
        p = self.PHASES.index(name)
        if p != self.phase[i]:
            self.phase[i] = p
            self.dwell[i] = 0
            self._changed[i] = True

    def in_phase(self, i: int, name: str) -> bool:
        return self.PHASES[self.phase[i]] == name

    def arm_move(self, out: np.ndarray, s: WorldState, i: int, side: int, q_arm: np.ndarray,
                 max_step: float | None = None) -> None:
        """Write arm ``side``'s command towards ``q_arm`` into ``out`` (rate-limited from the measured q)."""
        sl = arm_slice(side)
        out[sl] = move_towards(s.q[i, sl], q_arm, self.arm_step if max_step is None else max_step)

    def hand_to(self, out: np.ndarray, side: int, normalized: np.ndarray | float) -> None:
        u = np.broadcast_to(np.asarray(normalized, dtype=np.float64), (N_HAND_SIDE,))
        out[hand_slice(side)] = robot_spec.hand_normalized_to_rad(u, self.hand)

    def hold_ready(self, out: np.ndarray, side: int) -> None:
        out[arm_slice(side)] = self.ready_q[arm_slice(side)]
        out[hand_slice(side)] = self.ready_q[hand_slice(side)]

    def palm_error(self, s: WorldState, i: int, side: int, target: np.ndarray) -> float:
        return float(np.linalg.norm(s.palms[i, side] - target))

    def finger_closure(self, s: WorldState, i: int, side: int) -> float:
        """Mean normalized closure (0 open .. 1 closed) of the four fingers of hand ``side`` as measured."""
        u = robot_spec.hand_rad_to_normalized(s.q[i, hand_slice(side)], self.hand)
        return float(np.mean(u[2:]))

    def hand_speed(self, s: WorldState, i: int, side: int) -> float:
        return float(np.max(np.abs(s.qd[i, hand_slice(side)])))

    def arm_speed(self, s: WorldState, i: int, side: int) -> float:
        return float(np.max(np.abs(s.qd[i, arm_slice(side)])))

    def object_size(self, i: int) -> np.ndarray:
        """MuJoCo geom size of env ``i``'s object as randomized this episode (shape scale included)."""
        return self.env.physics.models[i].geom_size[self.env.index.object_geom].copy()
