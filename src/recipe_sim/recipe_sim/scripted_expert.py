"""A scripted grasp-and-reach expert that drives a RecipeVecEnv: the demonstrator for demo-initialised PPO.

Each env plans the side grasp of ``recipe_sim.tasks.scripted`` when its episode starts (closer hand,
the grasp of config/grasps.yaml, from the true object position and the episode's goal), then follows it
open-loop in policy steps: reach (10 steps, linear in joint space from the ready pose, the hand taking
its preshape), close (6), carry to the goal (14), hold. The plan is keyed on the env's own episode
clock (``episode_length_buf``), so the expert works with auto-resetting envs and can be called
like any policy: ``actions = expert(obs)``.

It needs episodes that start at the ready pose (no task-aware init states): the reach is planned from
there. Envs whose object or goal is out of the side grasp's reach (IK misses by > 5 mm at the grasp's
orientation) hold the ready pose for the whole episode and report ``has_plan`` False.

Used by ``benchmarks/scripted_grasp.py`` (what a script achieves under randomization) and by
``ppo/demo_init.py`` (the demonstrations a specialist is cloned from before PPO).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recipe_common import robot_spec
from recipe_sim.tasks.grasps import SideGrasp, load_grasps
from recipe_sim.tasks.scripted import GraspPlan, plan_side_grasp
from recipe_sim.vec_env import N_ARM

REACH_STEPS, CLOSE_STEPS, CARRY_STEPS = 10, 6, 14
SCRIPT_STEPS = REACH_STEPS + CLOSE_STEPS + CARRY_STEPS
SUPPORTED_KINDS = ("grasp_reach",)


class SideGraspExpert:
    """Per-env scripted side grasp; ``__call__(obs)`` returns (N, 26) float32 actions."""

    def __init__(self, env: Any, grasp: SideGrasp | str | None = None) -> None:
        """``grasp``: a SideGrasp, a grasp name of config/grasps.yaml, or None for its default."""
        kind = getattr(getattr(env, "task_cfg", None), "kind", None)
        if kind not in SUPPORTED_KINDS:
            raise ValueError(
                f"the scripted side-grasp expert drives {list(SUPPORTED_KINDS)} envs, not {kind!r}"
            )
        if getattr(env, "init_states", None) is not None:
            raise ValueError(
                "the scripted expert plans its reach from the ready pose; build the env without "
                "task-aware init states"
            )
        self.env = env
        self.grasp = grasp if isinstance(grasp, SideGrasp) else load_grasps().get(grasp)
        n = int(env.num_envs)
        self._plans: list[tuple[GraspPlan, np.ndarray] | None] = [None] * n
        self._planned = np.zeros(n, dtype=bool)  # a plan (or its absence) exists for the current episode
        self._last_clock = np.full(n, -1)

    @property
    def has_plan(self) -> np.ndarray:
        """(N,) bool: the current episode of each env has a reachable grasp and goal."""
        return np.array([p is not None for p in self._plans])

    def replan(self, env_ids: np.ndarray | None = None) -> None:
        """Plan the grasp of ``env_ids`` (all when None) from their current object position and goal."""
        env = self.env
        ids = np.arange(env.num_envs) if env_ids is None else np.asarray(env_ids, dtype=int)
        model, index = env.physics.models[0], env.index
        oa = index.object_qpos_adr
        for i in ids:
            side = "left" if int(env.task.side[i]) == 0 else "right"
            pos = env.physics.qpos[i, oa : oa + 3].copy()
            goal = env.task.goal[i].numpy().astype(np.float64)
            try:
                plan = plan_side_grasp(model, index, env.ready_q, pos, side, lift=0.0, grasp=self.grasp)
                at_goal = plan_side_grasp(model, index, env.ready_q, goal, side, lift=0.0, grasp=self.grasp)
            except ValueError:
                self._plans[i] = None
            else:
                carry = at_goal.approach.copy()
                carry[N_ARM:] = plan.closed[N_ARM:]  # the goal's arm pose with the grasping hand closed
                self._plans[i] = (plan, carry)
            self._planned[i] = True

    def joint_targets(self) -> np.ndarray:
        """(N, 26) joint targets for each env's current policy step (plans new episodes first)."""
        env = self.env
        clock = env.episode_length_buf.cpu().numpy().astype(int)
        # A new episode: the clock went back (auto-reset in step). A second call without a step in between
        # keeps the plan (so a caller can plan, move the object, then run). The one case this misses, an
        # episode that ends on its first step, runs its successor on the old plan.
        fresh = np.flatnonzero(~self._planned | (clock < self._last_clock))
        if fresh.size:
            self.replan(fresh)
        self._last_clock = clock
        out = np.tile(env.ready_q, (env.num_envs, 1))
        for i, plan in enumerate(self._plans):
            if plan is not None:
                out[i] = script_targets(env.ready_q, plan[0], plan[1], int(clock[i]))
        return out

    def __call__(self, obs: Any = None) -> torch.Tensor:
        q = self.joint_targets()
        return torch.as_tensor(robot_spec.joint_targets_to_action(q, self.env.hand), dtype=torch.float32)


def script_targets(ready_q: np.ndarray, grasp: GraspPlan, carry: np.ndarray, k: int) -> np.ndarray:
    """(26,) joint targets of policy step ``k`` of the scripted episode."""
    if k < REACH_STEPS:
        return ready_q + (grasp.approach - ready_q) * (k + 1) / REACH_STEPS
    k -= REACH_STEPS
    if k < CLOSE_STEPS:
        return grasp.approach + (grasp.closed - grasp.approach) * (k + 1) / CLOSE_STEPS
    k -= CLOSE_STEPS
    if k < CARRY_STEPS:
        return grasp.closed + (carry - grasp.closed) * (k + 1) / CARRY_STEPS
    return carry.copy()
