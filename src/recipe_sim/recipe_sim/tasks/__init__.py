"""The recipe's three tasks (grasp_reach, box_lift, handover in both directions) behind one interface.

``make_task`` builds the Task for a config/tasks.yaml entry; the vectorized env (recipe_sim.vec_env)
drives it. Each task module documents its reward, success detector and termination.
"""

from __future__ import annotations

from recipe_common.tasks import TASK_NAMES
from recipe_sim.rewards import RewardConfig
from recipe_sim.tasks.base import Frame, StepOutcome, Task
from recipe_sim.tasks.box_lift import BoxLiftTask
from recipe_sim.tasks.config import TaskConfig, TaskSuite, load_task_configs
from recipe_sim.tasks.grasp_reach import GraspReachTask
from recipe_sim.tasks.handover import HandoverTask

TASK_CLASSES: dict[str, type[Task]] = {
    "grasp_reach": GraspReachTask,
    "box_lift": BoxLiftTask,
    "handover": HandoverTask,
}
assert tuple(TASK_CLASSES) == TASK_NAMES, "every task of recipe_common.tasks needs a class here"

__all__ = [
    "TASK_CLASSES",
    "BoxLiftTask",
    "Frame",
    "GraspReachTask",
    "HandoverTask",
    "StepOutcome",
    "Task",
    "TaskConfig",
    "TaskSuite",
    "load_task_configs",
    "make_task",
]


def make_task(
    cfg: TaskConfig, reward_cfg: RewardConfig, num_envs: int, table_top: float, max_stickers: int
) -> Task:
    if cfg.kind not in TASK_CLASSES:
        raise ValueError(
            f"task {cfg.name!r}: unknown kind {cfg.kind!r}; expected one of {sorted(TASK_CLASSES)}"
        )
    return TASK_CLASSES[cfg.kind](cfg, reward_cfg, num_envs, table_top, max_stickers)
