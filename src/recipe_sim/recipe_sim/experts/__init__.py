"""Closed-loop scripted experts for the three tasks (see experts/base.py for what they share)."""

from __future__ import annotations

from typing import Any

from recipe_sim.experts.base import Expert
from recipe_sim.experts.box_lift import BoxLiftExpert
from recipe_sim.experts.grasp_reach import GraspReachExpert
from recipe_sim.experts.handover import HandoverExpert

EXPERTS: dict[str, type[Expert]] = {
    "grasp_reach": GraspReachExpert,
    "box_lift": BoxLiftExpert,
    "handover": HandoverExpert,
}


def make_expert(env: Any, **kwargs: Any) -> Expert:
    kind = env.task_cfg.kind
    if kind not in EXPERTS:
        raise ValueError(f"no scripted expert for task kind {kind!r}; have {sorted(EXPERTS)}")
    return EXPERTS[kind](env, **kwargs)
