"""The task registry: the recipe's three tasks, the one list every other list of tasks reads from.

config/tasks.yaml may hold several entries per task (``handover_left_to_right`` is an entry of kind
``handover``); rewards, task classes, launch arguments, CLIs and the deploy stack take their choices
from ``TASK_NAMES`` here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    name: str
    default_object: str  # catalog object (config/objects.yaml) the demo and tools use by default
    bimanual: bool  # both hands act on the object (box_lift, handover)
    description: str


TASKS: dict[str, TaskInfo] = {
    "grasp_reach": TaskInfo("grasp_reach", "can_small", False,
                            "the closer hand grasps a tabletop object, lifts it and moves it to a goal"),
    "box_lift": TaskInfo("box_lift", "lift_box", True,
                         "both palms squeeze a box too large for one hand and lift it"),
    "handover": TaskInfo("handover", "handover_block", True,
                         "hand A grasps a block out of B's reach, passes it to B, B takes it to a goal"),
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def task_info(name: str) -> TaskInfo:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {list(TASK_NAMES)}") from None
