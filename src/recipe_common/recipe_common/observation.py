"""The state part of a policy's observation, one layout for the sim, the collection and the policy node.

The actor of a specialist (and the state input of the generalist) is ``[joint_pos (26, actuated order of
robot_spec), object_pos (3, world frame), goal (3, world frame, only for tasks with a goal)]``. The sim adds
Table IV's observation noise before calling ``policy_state``; the policy node calls it on what the driver
and perception publish, after ``frames.to_world``.
"""

from __future__ import annotations

import numpy as np

from recipe_common import robot_spec

POLICY_FIELDS: tuple[tuple[str, int], ...] = (("joint_pos", robot_spec.ACTION_DIM), ("object_pos", 3))
GOAL_FIELD = ("goal", 3)


def policy_layout(has_goal: bool) -> tuple[tuple[str, int], ...]:
    return (*POLICY_FIELDS, GOAL_FIELD) if has_goal else POLICY_FIELDS


def field_slice(name: str, has_goal: bool = True) -> slice:
    """Where field ``name`` sits along the last axis of a ``policy_state`` row."""
    start = 0
    for field, n in policy_layout(has_goal):
        if field == name:
            return slice(start, start + n)
        start += n
    fields = [f for f, _ in policy_layout(has_goal)]
    raise KeyError(f"no field {name!r} in the policy state (fields: {fields})")


def policy_state(q: np.ndarray, object_pos: np.ndarray, goal: np.ndarray | None = None) -> np.ndarray:
    """Concatenate the fields along the last axis: (..., 29) without a goal, (..., 32) with one."""
    q = np.asarray(q, dtype=np.float64)
    obj = np.asarray(object_pos, dtype=np.float64)
    if q.shape[-1] != robot_spec.ACTION_DIM or obj.shape[-1] != 3:
        raise ValueError(f"joint_pos (..., {robot_spec.ACTION_DIM}) and object_pos (..., 3) expected, "
                         f"got {q.shape} and {obj.shape}")
    parts = [q, obj]
    if goal is not None:
        goal = np.asarray(goal, dtype=np.float64)
        if goal.shape[-1] != 3:
            raise ValueError(f"goal (..., 3) expected, got {goal.shape}")
        parts.append(np.broadcast_to(goal, (*obj.shape[:-1], 3)))
    return np.concatenate(parts, axis=-1)
