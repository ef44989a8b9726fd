"""Box lift: both hands lift a box too large for one hand to a goal above its start.

Stickers: the object's placement (side centres by default, ``sticker_count`` points) split, at every
step, into the half facing each hand (``facing_halves``): the left hand is rewarded on the half on the
robot's left (+y), the right hand on the other, so the two hands go to opposite sides instead of both
to the nearest face. The split runs along whichever of the box's horizontal axes points most nearly
sideways, so a box the squeeze turns by a quarter turn is held on its faces that now face the hands
(a split fixed to the box's own y would put both palms on one half then). A shape with no points on
one side gives that hand all points.

Reward (paper Eq. 3 with both hands): r_contact(left, alpha) + r_contact(right, beta) + r_goal, the
goal being the rest position raised by ``lift_goal_height``.
Success (success.box_lift_success): box lifted by lift_height and off the table (its lowest corner
table_clearance above the top) with both hands touching it (MuJoCo contacts: ``Frame.hands_touching``)
for hold_steps steps. The reward's lift term still asks for fingertips on the stickers (min_tips_in_contact
within contact_distance of each hand's half): it shapes where to hold; success is whether the box is held.
Demonstrations (``StepOutcome.demo_success``: demo_init's expert episodes, distillation's collection) must
reach the same lift with the fingertips on the stickers, the grasp the reward shapes.
"""

from __future__ import annotations

import numpy as np
import torch

from recipe_sim import stickers, success
from recipe_sim.objects import ObjectSpec
from recipe_sim.rewards import contact_reward, goal_reward, lift_reward
from recipe_sim.tasks.base import LEFT, RIGHT, Frame, StepOutcome, Task


def bounding_half_extents(shape: str, size: tuple[float, ...]) -> np.ndarray:
    """Half sizes (3,) of an object's bounding box in its own frame: exact for a box, the task's objects."""
    if shape == "box":
        return np.asarray(size, dtype=np.float32)
    r = size[0]
    return np.asarray([r, r, size[1] if shape == "cylinder" else r], dtype=np.float32)


FAR = 1.0e3  # m: where a sticker outside a hand's half is moved, so min distances ignore it


def facing_halves(local: torch.Tensor, obj_quat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, n) bool masks (left, right) of object-local stickers (N, n, 3) on the box's half facing each hand.

    The halves are split by the sign of the local coordinate along the box's horizontal axis (x or y)
    whose world direction is nearest the robot's lateral axis (world y), signed so that + faces the
    left. For a box within 45 degrees of square to the robot (every spawn) that is its own +-y; past
    45 degrees (the squeeze turns a wide box spawned beyond its peak-width yaw towards a quarter turn)
    it is its +-x, the faces the palms then hold. A half with no point is given all points.
    """
    q = obj_quat / torch.linalg.vector_norm(obj_quat, dim=-1, keepdim=True)
    rot = stickers.quat_to_matrix(q)  # columns: the local axes in the world
    lat_x, lat_y = rot[:, 1, 0], rot[:, 1, 1]  # world-y component of the local x and y axes
    use_x = lat_x.abs() > lat_y.abs()
    sign = torch.where(use_x, torch.sign(lat_x), torch.sign(lat_y)).unsqueeze(-1)
    coord = torch.where(use_x.unsqueeze(-1), local[..., 0], local[..., 1]) * sign
    left, right = coord > 1e-9, coord < -1e-9
    left = torch.where(left.any(dim=-1, keepdim=True), left, torch.ones_like(left))
    right = torch.where(right.any(dim=-1, keepdim=True), right, torch.ones_like(right))
    return left, right


class BoxLiftTask(Task):
    kind = "box_lift"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.half_extents = torch.zeros(self.num_envs, 3)  # each env's box, for the table-clearance check
        self.demo_counter = torch.zeros(self.num_envs, dtype=torch.long)  # the demonstration criterion's hold

    def spawn_positions(self, env_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.cfg.spawn.sample(rng, len(env_ids), self.table_top)

    def set_objects(self, env_ids: np.ndarray, specs: list[ObjectSpec], scales: np.ndarray) -> None:
        """Stickers (all points for both hands; ``world_stickers`` splits them) and the boxes' half sizes."""
        super().set_objects(env_ids, specs, scales)
        for k, (spec, s) in enumerate(zip(specs, scales, strict=True)):
            half = bounding_half_extents(spec.shape, spec.size) * float(s)
            self.half_extents[env_ids[k]] = torch.as_tensor(half)

    def world_stickers(self, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        """Each hand's half (``facing_halves``) of all stickers in the world; the rest moved out of reach."""
        world = stickers.stickers_world(self.stickers_left, frame.obj_pos, frame.obj_quat)
        left, right = facing_halves(self.stickers_left, frame.obj_quat)
        far = frame.obj_pos.unsqueeze(1) + torch.tensor([0.0, 0.0, FAR])
        return torch.where(left.unsqueeze(-1), world, far), torch.where(right.unsqueeze(-1), world, far)

    def _finish_reset(self, env_ids: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
        ids = torch.as_tensor(env_ids, dtype=torch.long)
        self.demo_counter[ids] = 0
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
        tips_on = torch.stack([  # (N, 2): each hand's fingertips on its half of the stickers
            success.hand_in_contact(left, frame.tips[:, LEFT], sp.contact_distance, sp.min_tips_in_contact),
            success.hand_in_contact(right, frame.tips[:, RIGHT], sp.contact_distance, sp.min_tips_in_contact),
        ], dim=1)
        lift = lift_reward(frame.obj_pos, self.rest_z, tips_on.all(dim=1), sp.lift_height, rc.lift_weight,
                           self.goal, rc.lift_goal_distance)
        if frame.hands_touching is None:
            raise ValueError("box_lift's success needs Frame.hands_touching (which hands touch the box)")
        clear = success.lowest_point_clear(frame.obj_pos, frame.obj_quat, self.half_extents, self.table_top,
                                           sp.table_clearance)
        ok, self.counter = success.box_lift_success(
            frame.obj_pos, self.rest_z, frame.hands_touching, self.counter, sp, clear=clear
        )
        # Demonstrations must show the grasp the reward asks for: the same lift with each hand's fingertips
        # on its half. Cloning the expert's other lifts (a palm on one face, the fingers elsewhere) took the
        # wide box from 84% to 67-68% (docs/specialists.md, box_lift).
        demo, self.demo_counter = success.box_lift_success(
            frame.obj_pos, self.rest_z, tips_on, self.demo_counter, sp, clear=clear
        )
        return StepOutcome(
            reward=contact + goal + lift,
            terms={"contact": contact, "goal": goal, "lift": lift},
            success=ok,
            failure=torch.zeros(self.num_envs, dtype=torch.bool),
            demo_success=demo,
        )
