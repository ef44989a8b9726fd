"""Bimanual handover: hand A grasps a block out of hand B's reach, passes it to hand B, which carries
it to a final goal. Directions: left-to-right, right-to-left, or ``both`` (drawn per env at reset).

The block spawns on A's side (``spawn`` region given for A = left, mirrored otherwise). Stage machine
per env (success.handover_step): progress 0 while A carries the block to the transfer goal (near the
midline, reachable by both hands), 1 once the lifted block reaches it, 2 (success) once hand B holds it
(min_tips_in_contact tips on the stickers) lifted at the final goal (``final_goal`` region given for
B = right, mirrored otherwise) for hold_steps steps.

Stickers: the object's placement split by the sign of the object-local z: hand A is rewarded (and counted)
on the upper half, hand B on the lower half, so that at the transfer point both hands can hold the block
at once, one above the other (a placement with no points above or below gives both hands all points).

Reward (paper Eq. 4): (1-a)(r_contact(A) + r_goal(transfer)) + a(r_contact(B) + r_goal(final)) with
a = 1 from the transfer on, plus stage_bonuses[k] once when stage k completes. Hand coefficients:
alpha for the left hand, beta for the right. The policy observes the goal of the current stage.
"""

from __future__ import annotations

import numpy as np
import torch

from recipe_sim import success
from recipe_sim.objects import ObjectSpec
from recipe_sim.rewards import goal_reward, hand_contact_reward, handover_reward, newly_completed_stages
from recipe_sim.tasks.base import LEFT, RIGHT, Frame, StepOutcome, Task, sticker_points

_DIRECTION_SIDE_A = {"left_to_right": LEFT, "right_to_left": RIGHT}


def split_by_height(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper half, lower half) of local sticker points by the sign of z (all points if a half is empty)."""
    upper, lower = pts[pts[:, 2] > 1e-9], pts[pts[:, 2] < -1e-9]
    return (upper if len(upper) else pts), (lower if len(lower) else pts)


class HandoverTask(Task):
    kind = "handover"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = self.num_envs
        self.side_a = torch.zeros(n, dtype=torch.long)
        self.progress = torch.zeros(n, dtype=torch.long)
        self.transfer_goal = torch.zeros(n, 3)
        self.final_goal = torch.zeros(n, 3)
        self._upper = torch.zeros(n, self.max_stickers, 3)  # hand A's stickers (object-local)
        self._lower = torch.zeros(n, self.max_stickers, 3)  # hand B's

    def set_objects(self, env_ids: np.ndarray, specs: list[ObjectSpec], scales: np.ndarray) -> None:
        for k, (spec, sc) in enumerate(zip(specs, scales, strict=True)):
            upper, lower = split_by_height(sticker_points(spec, float(sc), self.cfg.sticker_count))
            self._upper[env_ids[k]] = self.pad(upper)
            self._lower[env_ids[k]] = self.pad(lower)

    def spawn_positions(self, env_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(env_ids)
        if self.cfg.direction == "both":
            side_a = (rng.random(n) < 0.5).astype(np.int64)  # 1 = right hand is A
        else:
            side_a = np.full(n, _DIRECTION_SIDE_A[self.cfg.direction], dtype=np.int64)
        self.side_a[torch.as_tensor(env_ids, dtype=torch.long)] = torch.as_tensor(side_a)
        return self.cfg.spawn.sample(rng, n, self.table_top, mirror_y=side_a == RIGHT)

    def _finish_reset(self, env_ids: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
        ids = torch.as_tensor(env_ids, dtype=torch.long)
        a_right = (self.side_a[ids] == RIGHT).numpy()
        assert self.cfg.transfer_goal is not None and self.cfg.final_goal is not None
        n = len(env_ids)
        self.transfer_goal[ids] = torch.as_tensor(
            self.cfg.transfer_goal.sample(rng, n, self.table_top, mirror_y=a_right), dtype=torch.float32
        )
        self.final_goal[ids] = torch.as_tensor(
            self.cfg.final_goal.sample(rng, n, self.table_top, mirror_y=a_right), dtype=torch.float32
        )
        self.progress[ids] = 0
        a_left = (self.side_a[ids] == LEFT)[:, None, None]
        self.stickers_left[ids] = torch.where(a_left, self._upper[ids], self._lower[ids])
        self.stickers_right[ids] = torch.where(a_left, self._lower[ids], self._upper[ids])
        self._update_goal()

    def set_episode(self, env_id: int, side_a: int, transfer_goal: torch.Tensor,
                    final_goal: torch.Tensor) -> None:
        """Give env ``env_id`` another episode's direction and goals (stage 0, stickers per hand to match):
        closed-loop sim runs of the twin's trials start where those trials start."""
        i = int(env_id)
        self.side_a[i] = int(side_a)
        self.transfer_goal[i], self.final_goal[i] = transfer_goal, final_goal
        self.progress[i] = 0
        a_left = bool(self.side_a[i] == LEFT)
        self.stickers_left[i] = self._upper[i] if a_left else self._lower[i]
        self.stickers_right[i] = self._lower[i] if a_left else self._upper[i]
        self._update_goal()

    def _update_goal(self) -> None:
        self.goal = torch.where(
            (self.progress >= success.HANDOVER_TRANSFER_DONE)[:, None], self.final_goal, self.transfer_goal
        )

    def task_obs(self) -> torch.Tensor:
        out = torch.zeros(self.num_envs, 2)
        out[:, 0] = torch.where(self.side_a == LEFT, 1.0, -1.0)
        out[:, 1] = torch.clamp(self.progress, max=1).to(torch.float32)
        return out

    def _evaluate(self, frame: Frame) -> StepOutcome:
        rc, sp = self.reward_cfg, self.success_params
        left, right = self.world_stickers(frame)
        rows = torch.arange(self.num_envs)
        a_left = self.side_a == LEFT
        stickers_a = torch.where(a_left[:, None, None], left, right)
        stickers_b = torch.where(a_left[:, None, None], right, left)
        tips_a = frame.tips[rows, self.side_a]
        tips_b = frame.tips[rows, 1 - self.side_a]
        # hand_contact_reward takes one coefficient (alpha: left hand, beta: right): evaluate both,
        # pick per env.
        contact_a = torch.where(
            a_left,
            hand_contact_reward(stickers_a, tips_a, rc.contact_alpha),
            hand_contact_reward(stickers_a, tips_a, rc.contact_beta),
        )
        contact_b = torch.where(
            a_left,
            hand_contact_reward(stickers_b, tips_b, rc.contact_beta),
            hand_contact_reward(stickers_b, tips_b, rc.contact_alpha),
        )
        goal_a = goal_reward(frame.obj_pos, self.transfer_goal, rc.goal_scale)
        goal_b = goal_reward(frame.obj_pos, self.final_goal, rc.goal_scale)
        prev = self.progress.clone()
        self.progress, self.counter, done = success.handover_step(
            prev,
            self.counter,
            frame.obj_pos,
            self.rest_z,
            self.transfer_goal,
            self.final_goal,
            stickers_b,
            tips_b,
            sp,
        )
        stage = torch.clamp(self.progress, max=1)
        completed = newly_completed_stages(prev, self.progress)
        total = handover_reward(stage, contact_a, goal_a, contact_b, goal_b, rc.stage_bonuses, completed)
        a = stage.to(torch.float32)
        contact = (1.0 - a) * contact_a + a * contact_b
        goal = (1.0 - a) * goal_a + a * goal_b
        self._update_goal()
        return StepOutcome(
            reward=total,
            terms={"contact": contact, "goal": goal, "stage_bonus": total - contact - goal},
            success=done,
            failure=torch.zeros(self.num_envs, dtype=torch.bool),
            extras={"progress": self.progress.clone()},
        )
