"""Grasp-and-reach: the hand closer to the object grasps it, lifts it and carries it to a goal.

Closer-hand rule: at reset, the hand whose palm is nearer the object (Euclidean, reset state) is the
active hand for the whole episode; with ``idle_arm: hold`` the other arm and hand keep their reset
targets, whatever the policy outputs for them. The goal is drawn from the task's goal region on the
active hand's side (region y mirrored for the right hand).

Reward (paper Eq. 3): r_contact of the active hand only (alpha for left, beta for right) + r_goal.
Success (success.grasp_reach_success): object at least lift_height above its rest height and within
goal_tolerance of the goal for hold_steps consecutive steps.
"""

from __future__ import annotations

import numpy as np
import torch

from recipe_common.robot_spec import side_action_mask
from recipe_sim import success
from recipe_sim.rewards import goal_reward, hand_contact_reward, lift_reward
from recipe_sim.tasks.base import LEFT, RIGHT, Frame, StepOutcome, Task


class GraspReachTask(Task):
    kind = "grasp_reach"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.side = torch.zeros(self.num_envs, dtype=torch.long)  # active hand: 0 left, 1 right
        self._side_masks = torch.as_tensor(np.stack([side_action_mask(LEFT), side_action_mask(RIGHT)]))

    def spawn_positions(self, env_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.cfg.spawn.sample(rng, len(env_ids), self.table_top)

    def _finish_reset(self, env_ids: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
        ids = torch.as_tensor(env_ids, dtype=torch.long)
        dist = torch.linalg.vector_norm(frame.palms[ids] - frame.obj_pos[ids, None, :], dim=-1)  # (n, 2)
        side = torch.argmin(dist, dim=-1)
        self.side[ids] = side
        assert self.cfg.goal is not None
        goals = self.cfg.goal.sample(rng, len(env_ids), self.table_top, mirror_y=(side == RIGHT).numpy())
        self.goal[ids] = torch.as_tensor(goals, dtype=torch.float32)

    def hold_mask(self) -> torch.Tensor | None:
        if self.cfg.idle_arm != "hold":
            return None
        return self._side_masks[1 - self.side]

    def task_obs(self) -> torch.Tensor:
        out = torch.zeros(self.num_envs, 2)
        out[:, 0] = torch.where(self.side == LEFT, 1.0, -1.0)
        return out

    def _evaluate(self, frame: Frame) -> StepOutcome:
        rc, sp = self.reward_cfg, self.success_params
        left, right = self.world_stickers(frame)
        c_left = hand_contact_reward(left, frame.tips[:, LEFT], rc.contact_alpha)
        c_right = hand_contact_reward(right, frame.tips[:, RIGHT], rc.contact_beta)
        contact = torch.where(self.side == LEFT, c_left, c_right)
        goal = goal_reward(frame.obj_pos, self.goal, rc.goal_scale)
        held = torch.where(
            self.side == LEFT,
            success.hand_in_contact(left, frame.tips[:, LEFT], sp.contact_distance, sp.min_tips_in_contact),
            success.hand_in_contact(right, frame.tips[:, RIGHT], sp.contact_distance, sp.min_tips_in_contact),
        )
        lift = lift_reward(frame.obj_pos, self.rest_z, held, sp.lift_height, rc.lift_weight,
                           self.goal, rc.lift_goal_distance)
        ok, self.counter = success.grasp_reach_success(
            frame.obj_pos, self.goal, self.rest_z, self.counter, sp
        )
        n = self.num_envs
        return StepOutcome(
            reward=contact + goal + lift,
            terms={"contact": contact, "goal": goal, "lift": lift},
            success=ok,
            failure=torch.zeros(n, dtype=torch.bool),
        )
