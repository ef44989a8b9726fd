"""Closed-loop scripted experts for the three tasks (see experts/base.py for what they share).

Every expert drives a RecipeVecEnv: ``expert = make_expert(env)``; ``actions = expert.act(obs)`` gives the
(N, 26) actions for the env's current state (``expert(obs)`` too, so it runs wherever a policy does);
``expert.reset(env_ids)`` restarts envs' phase machines (new episodes are noticed by themselves). Used by
demo-initialised PPO (demonstrations and DAgger labels), the benchmarks ``expert_success`` and
``scripted_grasp``, and as a demonstrator for distillation of objects no specialist holds yet.
"""

from __future__ import annotations

import inspect
from typing import Any

from recipe_sim.experts.base import Expert
from recipe_sim.experts.box_lift import BoxLiftExpert
from recipe_sim.experts.grasp_reach import GraspReachExpert
from recipe_sim.experts.handover import HandoverExpert

__all__ = ["EXPERTS", "BoxLiftExpert", "Expert", "GraspReachExpert", "HandoverExpert", "make_expert"]

EXPERTS: dict[str, type[Expert]] = {
    "grasp_reach": GraspReachExpert,
    "box_lift": BoxLiftExpert,
    "handover": HandoverExpert,
}


def make_expert(env: Any, **kwargs: Any) -> Expert:
    """The closed-loop expert of ``env``'s task kind (``kwargs`` go to its constructor, e.g. ``grasp=``)."""
    kind = env.task_cfg.kind
    if kind not in EXPERTS:
        raise ValueError(f"no scripted expert for task kind {kind!r}; have {sorted(EXPERTS)}")
    cls = EXPERTS[kind]
    known = set(inspect.signature(cls.__init__).parameters) - {"self", "env"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no option(s) {unknown}; it takes {sorted(known)}")
    return cls(env, **kwargs)
