"""Box lift: both hands lift a box too large for one hand to a goal above its start.

Stickers: the object's placement (side centres by default, ``sticker_count`` points) split by the
sign of the object-local y: the left hand is rewarded on the +y half, the right hand on the -y half,
so the two hands go to opposite sides instead of both to the nearest face. A shape with no points
on one side gives that hand all points.

Reward (paper Eq. 3 with both hands): r_contact(left, alpha) + r_contact(right, beta) + r_goal, the
goal being the rest position raised by ``lift_goal_height``.
Success (success.box_lift_success): box lifted by lift_height with both hands in contact
(min_tips_in_contact fingertips within contact_distance of their half's stickers) for hold_steps steps.
"""

from __future__ import annotations

import numpy as np
import torch

from recipe_sim import success
from recipe_sim.objects import ObjectSpec
from recipe_sim.rewards import contact_reward, goal_reward, lift_reward
from recipe_sim.tasks.base import LEFT, RIGHT, Frame, StepOutcome, Task, sticker_points


def split_by_side(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left half, right half) of local sticker points by the sign of y (all points if a half is empty)."""
    left, right = pts[pts[:, 1] > 1e-9], pts[pts[:, 1] < -1e-9]
    return (left if len(left) else pts), (right if len(right) else pts)


class BoxLiftTask(Task):
    kind = "box_lift"

    def spawn_positions(self, env_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.cfg.spawn.sample(rng, len(env_ids), self.table_top)

    def set_objects(self, env_ids: np.ndarray, specs: list[ObjectSpec], scales: np.ndarray) -> None:
        for k, (spec, s) in enumerate(zip(specs, scales, strict=True)):
            left, right = split_by_side(sticker_points(spec, float(s), self.cfg.sticker_count))
            self.stickers_left[env_ids[k]] = self.pad(left)
            self.stickers_right[env_ids[k]] = self.pad(right)

    def _finish_reset(self, env_ids: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
        ids = torch.as_tensor(env_ids, dtype=torch.long)
        goal = self.anchor[ids].clone()
        goal[:, 2] = self.rest_z[ids] + self.cfg.lift_goal_height
        self.goal[ids] = goal

    def _evaluate(self, frame: Frame) -> StepOutcome:
        rc, sp = self.reward_cfg, self.success_params
        left, right = self.world_stickers(frame)
        contact = contact_reward(
            left, frame.tips[:, LEFT], right, frame.tips[:, RIGHT], rc.contact_alpha, rc.contact_beta
        )
        goal = goal_reward(frame.obj_pos, self.goal, rc.goal_scale)
        held = success.hand_in_contact(
            left, frame.tips[:, LEFT], sp.contact_distance, sp.min_tips_in_contact
        ) & success.hand_in_contact(right, frame.tips[:, RIGHT], sp.contact_distance, sp.min_tips_in_contact)
        lift = lift_reward(frame.obj_pos, self.rest_z, held, sp.lift_height, rc.lift_weight,
                           self.goal, rc.lift_goal_distance)
        ok, self.counter = success.box_lift_success(
            frame.obj_pos,
            self.rest_z,
            left,
            frame.tips[:, LEFT],
            right,
            frame.tips[:, RIGHT],
            self.counter,
            sp,
        )
        return StepOutcome(
            reward=contact + goal + lift,
            terms={"contact": contact, "goal": goal, "lift": lift},
            success=ok,
            failure=torch.zeros(self.num_envs, dtype=torch.bool),
        )
