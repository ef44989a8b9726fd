"""What every task shares: per-env task state, stickers, the common reward terms and termination.

A task never touches MuJoCo. The env hands it a ``Frame`` (batched world state as torch tensors)
after every policy step and asks for rewards, success and failure; at reset it asks where to spawn
the object and then lets the task pick goals and hands from the reset state. All task state is a
per-env tensor, so resetting env i is writing row i.

Termination (every task): success (when ``terminate_on_success``), failure = the object fell below
the table top by ``drop_margin``, flew farther than ``max_object_distance`` from where it started,
or the state is not finite (the env also reports physics divergence as failure), and the time limit
(a time-out, not a failure: rsl-rl bootstraps through it).

Common reward terms (config/rewards.yaml): ``action_rate`` (-w ||a_t - a_t-1||^2), ``joint_limit``
(arm joints near their limits), ``drop`` (-penalty on the step the object falls off the table).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from recipe_common import robot_spec
from recipe_sim import stickers, success
from recipe_sim.objects import ObjectSpec
from recipe_sim.rewards import (
    RewardConfig,
    action_rate_penalty,
    arm_joint_limits,
    joint_limit_penalty,
    object_dropped_penalty,
)
from recipe_sim.success import SuccessParams
from recipe_sim.tasks.config import TaskConfig

LEFT, RIGHT = 0, 1
N_ARM = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE


@dataclass
class Frame:
    """Batched world state after a step (torch, float32, world frame)."""

    q: torch.Tensor  # (N, 26) actuated joint positions, robot_spec order
    qd: torch.Tensor  # (N, 26) actuated joint velocities
    obj_pos: torch.Tensor  # (N, 3)
    obj_quat: torch.Tensor  # (N, 4) wxyz
    obj_linvel: torch.Tensor  # (N, 3)
    obj_angvel: torch.Tensor  # (N, 3) world frame
    tips: torch.Tensor  # (N, 2, 4, 3) [left/right] x [thumb, index, middle, ring]
    palms: torch.Tensor  # (N, 2, 3)
    actions: torch.Tensor  # (N, 26) the policy's (clipped) action of this step
    prev_actions: torch.Tensor  # (N, 26) the previous one
    hands_touching: torch.Tensor | None = None  # (N, 2) bool [left/right]: the hand touches the object


@dataclass
class StepOutcome:
    reward: torch.Tensor  # (N,)
    terms: dict[str, torch.Tensor]  # (N,) each, summing to reward
    success: torch.Tensor  # (N,) bool
    failure: torch.Tensor  # (N,) bool
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    # (N,) bool: what an episode must reach to be kept as a demonstration (cloning, distillation); None: the
    # success. box_lift: its lift with each hand's fingertips on its half, the grasp the reward shapes.
    demo_success: torch.Tensor | None = None


def sticker_points(spec: ObjectSpec, scale: float, count: int | None) -> np.ndarray:
    """Object-local stickers (n, 3) of a catalog object at a shape scale."""
    size = np.asarray(spec.size, dtype=np.float64) * scale
    return stickers.make_stickers(spec.shape, size, spec.sticker_placement, count)


def rest_height(spec: ObjectSpec, scale: float = 1.0) -> float:
    """Centre height above the table of the object standing upright."""
    return float(spec.resting_height) * scale


class Task(ABC):
    """Base class; subclasses implement the task-specific reward, success and goals."""

    kind: str = ""
    has_goal: bool = True

    def __init__(
        self, cfg: TaskConfig, reward_cfg: RewardConfig, num_envs: int, table_top: float, max_stickers: int
    ) -> None:
        self.cfg = cfg
        self.reward_cfg = reward_cfg
        self.success_params: SuccessParams = SuccessParams.from_dict(
            {**reward_cfg.success.to_dict(), **cfg.success}, f"tasks.{cfg.name}.success"
        )
        self.num_envs = num_envs
        self.table_top = float(table_top)
        n = num_envs
        self.anchor = torch.zeros(n, 3)  # object start position (flew-away reference)
        self.rest_z = torch.zeros(n)  # object centre height when resting on the table
        self.goal = torch.zeros(n, 3)  # the goal the policy observes
        self.counter = torch.zeros(n, dtype=torch.long)  # consecutive steps the success condition held
        self.stickers_left = torch.zeros(n, max_stickers, 3)  # object-local, per hand (padded by repetition)
        self.stickers_right = torch.zeros(n, max_stickers, 3)
        self.max_stickers = max_stickers
        lo, hi = arm_joint_limits()
        self._arm_lo, self._arm_hi = (
            torch.as_tensor(lo, dtype=torch.float32),
            torch.as_tensor(hi, dtype=torch.float32),
        )

    # --- reset ----------------------------------------------------------------------------------------

    @abstractmethod
    def spawn_positions(self, env_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, 3) nominal object positions for the reset envs (z = table top; the env adds the rest height
        and the Table IV noise). May also draw per-env task variables (e.g. the handover direction)."""

    def set_objects(self, env_ids: np.ndarray, specs: list[ObjectSpec], scales: np.ndarray) -> None:
        """Per-env stickers for the objects the reset envs now hold. Default: both hands use all stickers."""
        for k, (spec, s) in enumerate(zip(specs, scales, strict=True)):
            pts = self.pad(sticker_points(spec, float(s), self.cfg.sticker_count))
            self.stickers_left[env_ids[k]] = pts
            self.stickers_right[env_ids[k]] = pts

    def pad(self, pts: np.ndarray) -> torch.Tensor:
        """Pad a sticker set to ``max_stickers`` by repeating its first point (min distances unchanged)."""
        if len(pts) > self.max_stickers:
            raise ValueError(f"{len(pts)} stickers exceed the env's maximum {self.max_stickers}")
        out = np.concatenate([pts, np.repeat(pts[:1], self.max_stickers - len(pts), axis=0)], axis=0)
        return torch.as_tensor(out, dtype=torch.float32)

    def finish_reset(
        self, env_ids: np.ndarray, frame: Frame, rest_z: np.ndarray, rng: np.random.Generator
    ) -> None:
        """Goals, hands and counters from the reset state of ``env_ids``."""
        ids = torch.as_tensor(env_ids, dtype=torch.long)
        self.anchor[ids] = frame.obj_pos[ids]
        self.rest_z[ids] = torch.as_tensor(rest_z, dtype=torch.float32)
        self.counter[ids] = 0
        self._finish_reset(env_ids, frame, rng)

    @abstractmethod
    def _finish_reset(self, env_ids: np.ndarray, frame: Frame, rng: np.random.Generator) -> None: ...

    # --- per step -------------------------------------------------------------------------------------

    def hold_mask(self) -> torch.Tensor | None:
        """(N, 26) bool: action entries the env replaces by the reset targets (an idle arm), or None."""
        return None

    def task_obs(self) -> torch.Tensor:
        """(N, 2) privileged task variables: [active side (+1 left, -1 right, 0 both), stage]."""
        return torch.zeros(self.num_envs, 2)

    def world_stickers(self, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        left = stickers.stickers_world(self.stickers_left, frame.obj_pos, frame.obj_quat)
        right = stickers.stickers_world(self.stickers_right, frame.obj_pos, frame.obj_quat)
        return left, right

    def evaluate(self, frame: Frame) -> StepOutcome:
        """Rewards, success and failure of the step that produced ``frame``."""
        out = self._evaluate(frame)
        rc, sp = self.reward_cfg, self.success_params
        dropped = success.object_fell(frame.obj_pos, self.table_top, sp.drop_margin)
        terms = dict(out.terms)
        terms["action_rate"] = action_rate_penalty(frame.actions, frame.prev_actions, rc.action_rate_weight)
        terms["joint_limit"] = joint_limit_penalty(
            frame.q[:, :N_ARM], self._arm_lo, self._arm_hi, rc.joint_limit_margin, rc.joint_limit_weight
        )
        terms["drop"] = object_dropped_penalty(dropped, rc.drop_penalty)
        reward = torch.stack(list(terms.values()), dim=0).sum(dim=0)
        failure = success.failed(
            frame.obj_pos, self.table_top, self.anchor, frame.q, frame.tips.reshape(-1, 24), params=sp
        )
        demo = out.success if out.demo_success is None else out.demo_success
        return replace(
            out, reward=reward, terms=terms, failure=failure | out.failure, success=out.success & ~failure,
            demo_success=demo & ~failure,
        )

    @abstractmethod
    def _evaluate(self, frame: Frame) -> StepOutcome:
        """Task reward terms (without the common regularizers) and success; failure beyond the common."""
