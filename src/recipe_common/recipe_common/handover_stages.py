"""Which goal a handover policy sees: the transfer point until hand A has brought the block there, then the
final goal.

The handover specialist observes one goal (``recipe_common.observation``); in training the env swaps it from
the transfer point to the final goal on the step its success detector (``recipe_sim.success.handover_step``)
marks the transfer done: the object centre at least ``lift_height`` above its rest height and within
``goal_tolerance`` of the transfer point. Deployed, nothing in the policy knows the stage, so the policy node
must make the same swap on the positions perception reports, with the same thresholds read from the same file
(config/rewards.yaml, ``tasks.handover.success``). A test checks this rule against the sim's detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recipe_common.config import ConfigError, as_float, in_file, load_yaml, mapping
from recipe_common.paths import config_path

REWARDS_FILE = "rewards.yaml"
TO_TRANSFER, TO_FINAL = 0, 1  # stages, as the sim's handover progress 0 / 1


@dataclass(frozen=True)
class TransferRule:
    """When the transfer counts as done (the sim's ``object_lifted`` and ``object_at_goal``)."""

    lift_height: float = 0.05  # m above the rest height
    goal_tolerance: float = 0.05  # m, object centre to the transfer point

    @classmethod
    def load(cls, path: str | Path | None = None) -> TransferRule:
        """The handover thresholds of config/rewards.yaml (defaults where the file leaves them out)."""
        path = config_path(REWARDS_FILE) if path is None else Path(path)
        data = load_yaml(path)
        try:
            success = mapping(mapping(mapping(data.get("tasks", {}), "tasks").get("handover", {}),
                                      "tasks.handover").get("success", {}), "tasks.handover.success")
            where = "tasks.handover.success"
            return cls(
                lift_height=as_float(success.get("lift_height", cls.lift_height), f"{where}.lift_height",
                                     minimum=0.0, exclusive=True),
                goal_tolerance=as_float(success.get("goal_tolerance", cls.goal_tolerance),
                                        f"{where}.goal_tolerance", minimum=0.0, exclusive=True),
            )
        except ConfigError as exc:
            raise in_file(path, exc) from None

    def transfer_done(self, object_pos: np.ndarray, rest_z: float, transfer_goal: np.ndarray) -> bool:
        p = np.asarray(object_pos, dtype=np.float64)
        lifted = p[2] - rest_z >= self.lift_height
        near = np.linalg.norm(p - np.asarray(transfer_goal, dtype=np.float64)) <= self.goal_tolerance
        return bool(lifted and near)


class HandoverGoals:
    """The goal of one handover episode, stage by stage. The swap happens once and is never undone, as in
    training (a block dropped after the transfer keeps the final goal)."""

    def __init__(self, transfer_goal: np.ndarray, final_goal: np.ndarray, rest_z: float,
                 rule: TransferRule | None = None) -> None:
        self.transfer_goal = np.asarray(transfer_goal, dtype=np.float64).reshape(3)
        self.final_goal = np.asarray(final_goal, dtype=np.float64).reshape(3)
        self.rest_z = float(rest_z)
        self.rule = rule or TransferRule()
        self.stage = TO_TRANSFER

    @property
    def goal(self) -> np.ndarray:
        return self.final_goal if self.stage == TO_FINAL else self.transfer_goal

    def update(self, object_pos: np.ndarray) -> np.ndarray:
        """The goal to observe now, given the object's latest position (world frame)."""
        if self.stage == TO_TRANSFER and self.rule.transfer_done(object_pos, self.rest_z, self.transfer_goal):
            self.stage = TO_FINAL
        return self.goal
