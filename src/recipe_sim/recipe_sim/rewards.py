"""Task rewards of the recipe (paper, Rewards), batched over N envs (torch), plus regularizers.

Equations (d(A, x) = min_j ||A_j - x||_2, see ``min_dist``):

* Eq. 1, contact:  r_contact = sum_i [ 1/(1 + alpha d(X_L, F_L_i)) + 1/(1 + beta d(X_R, F_R_i)) ]
  with X_L, X_R the world-frame sticker sets for the left/right hand and F_L, F_R the 4 fingertip
  positions. Each fingertip earns at most 1 (when it touches a sticker), so a hand earns at most 4.
* goal:            r_goal = -goal_scale * ||p_obj - p_goal||_2
* lift (ours, not in the paper; ``lift_weight`` 0 turns it off):
                   r_lift = lift_weight * clip(h / lift_height, 0, 1) [* exp(-||p_obj - p_goal|| / D)]
  while the hand(s) hold the object (min_tips_in_contact fingertips within contact_distance of the
  stickers), h = rise above rest; the goal factor applies when ``lift_goal_distance`` D is set.
* Eq. 3, grasp and lift / reach: r = r_contact + r_goal
* Eq. 4, handover: r = (1-a)(r_contact(h_A, o_A) + r_goal(o_A)) + a(r_contact(h_B, o_B) + r_goal(o_B))
  + bonus_k at the step stage k is completed (bonuses grow with k).

The goal term is linear in distance (not a bounded kernel) because the paper describes it as a
penalty on distance and because its gradient does not vanish far from the goal: with a kernel such
as exp(-d/s) an object carried 40 cm away would see an almost flat reward. It stays bounded in
practice since an object that flies away ends the episode (success.object_flew_away).

Why the lift term: with r_contact + r_goal alone, fingertips hovering a few cm from the stickers earn
most of r_contact at no risk, while a grasp attempt that fails (the object falls off the table) ends
the episode and forfeits every later step's reward; lifting the object gains at most goal_scale x
the lift height (0.25 per step for 5 cm). Until a policy's grasps succeed often, not grasping has the
higher return, and PPO fine-tuning of a cloned grasp (ppo/demo_init.py) measurably learnt to keep
clear of the object (training failures 60% -> 20%, successes 9% -> 0% in 13 minutes). A held, lifted
object paying lift_weight per step makes an attempt worth it at a lower success rate.

Why the goal factor: without it a held can 5 cm up pays the full lift_weight wherever it is, and carrying
it on to the goal gains only goal_scale x the distance (0.5 per step for 10 cm) at the risk of a drop.
A demo-initialised run (thumb-opposed grasp) reached 65% training success in 15 minutes, then learnt to
hold the can up beside the goal: r_lift kept rising while r_goal fell and success dropped to 13% by 30
minutes. With D = 0.1 m, a held can 10 cm from its goal earns 37% of the term and one at the goal all of
it, so the carry pays about six times more per cm than r_goal alone.

Weights per task live in config/rewards.yaml (``RewardConfig``). Per-step functions check shapes but
not NaN: a diverged env gives a NaN reward that the env must mask after ``success.nonfinite_state``
(raising would stop the other N-1 envs).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipe_common import robot_spec
from recipe_common.config import as_float, check_keys, load_yaml
from recipe_common.paths import config_path
from recipe_common.tasks import TASK_NAMES
from recipe_sim.stickers import as_positions, min_dist
from recipe_sim.success import SuccessParams

__all__ = [
    "FORMAT",
    "TASKS",
    "RewardConfig",
    "action_rate_penalty",
    "arm_joint_limits",
    "contact_reward",
    "goal_reward",
    "grasp_lift_reward",
    "hand_contact_reward",
    "handover_reward",
    "joint_limit_penalty",
    "lift_reward",
    "load_reward_configs",
    "min_dist",
    "newly_completed_stages",
    "object_dropped_penalty",
]

FORMAT = "recipe_sim/rewards/v1"
CONFIG_FILE = "rewards.yaml"
TASKS: tuple[str, ...] = TASK_NAMES
HANDOVER_STAGES = 2  # stage 0: hand A to the transfer point; stage 1: hand B to the final goal

# --------------------------------------------------------------------------- contact and goal


def hand_contact_reward(stickers: torch.Tensor, tips: torch.Tensor, coef: float) -> torch.Tensor:
    """One hand's half of Eq. 1: sum_i 1/(1 + coef * d(X, F_i)) -> (N,), in [0, number of tips]."""
    if coef < 0:
        raise ValueError(f"contact coefficient must be >= 0, got {coef}")
    d = min_dist(stickers, tips)
    return (1.0 / (1.0 + coef * d)).sum(dim=-1)


def contact_reward(stickers_left: torch.Tensor | None, tips_left: torch.Tensor | None,
                   stickers_right: torch.Tensor | None, tips_right: torch.Tensor | None,
                   alpha: float, beta: float) -> torch.Tensor:
    """Eq. 1 -> (N,). Pass None for both arguments of an unused hand (grasp-and-reach is one-handed);
    that hand then contributes 0."""
    terms = []
    for side, stickers, tips, coef in (("left", stickers_left, tips_left, alpha),
                                       ("right", stickers_right, tips_right, beta)):
        if (stickers is None) != (tips is None):
            raise ValueError(f"{side} hand: pass both stickers_{side} and tips_{side}, or neither")
        if stickers is not None:
            terms.append(hand_contact_reward(stickers, tips, coef))
    if not terms:
        raise ValueError("contact_reward needs at least one hand (all of stickers/tips are None)")
    if len(terms) == 2 and terms[0].shape != terms[1].shape:
        raise ValueError(f"left and right hands disagree on N: {tuple(terms[0].shape)} vs "
                         f"{tuple(terms[1].shape)}")
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def goal_reward(obj_pos: torch.Tensor, goal_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """r_goal = -scale * ||p_obj - p_goal|| -> (N,); goal_pos (N, 3) or one shared (3,)."""
    if scale < 0:
        raise ValueError(f"goal scale must be >= 0, got {scale}")
    p = as_positions("obj_pos", obj_pos)
    g = as_positions("goal_pos", goal_pos, p.shape[0], allow_shared=True).to(p)
    return -scale * torch.linalg.vector_norm(p - g, dim=-1)


def lift_reward(obj_pos: torch.Tensor, rest_z: torch.Tensor | float, held: torch.Tensor,
                lift_height: float, weight: float, goal_pos: torch.Tensor | None = None,
                goal_distance: float | None = None) -> torch.Tensor:
    """r_lift = weight * clip(h / lift_height, 0, 1) where ``held`` -> (N,); h = obj z - rest z.

    With ``goal_distance`` D (m), the term is scaled by exp(-||p_obj - p_goal|| / D) (``goal_pos`` needed).
    """
    if weight < 0 or not lift_height > 0:
        raise ValueError(f"lift weight must be >= 0 and lift height > 0, got {weight}, {lift_height}")
    p = as_positions("obj_pos", obj_pos)
    h = torch.as_tensor(held)
    if h.shape != (p.shape[0],):
        raise ValueError(f"held must have shape ({p.shape[0]},), got {tuple(h.shape)}")
    rise = p[:, 2] - torch.as_tensor(rest_z, dtype=p.dtype)
    out = weight * torch.clamp(rise / lift_height, 0.0, 1.0) * h.to(p.dtype)
    if goal_distance is not None:
        if not goal_distance > 0 or goal_pos is None:
            raise ValueError(f"the lift term's goal factor needs goal_pos and goal_distance > 0, "
                             f"got {goal_distance}")
        g = as_positions("goal_pos", goal_pos, p.shape[0], allow_shared=True).to(p)
        out = out * torch.exp(-torch.linalg.vector_norm(p - g, dim=-1) / goal_distance)
    return out


def grasp_lift_reward(stickers_left: torch.Tensor | None, tips_left: torch.Tensor | None,
                      stickers_right: torch.Tensor | None, tips_right: torch.Tensor | None,
                      obj_pos: torch.Tensor, goal_pos: torch.Tensor,
                      alpha: float, beta: float, goal_scale: float) -> torch.Tensor:
    """Eq. 3: r_contact + r_goal (grasp-and-reach with one hand, box lift with both) -> (N,)."""
    return (contact_reward(stickers_left, tips_left, stickers_right, tips_right, alpha, beta)
            + goal_reward(obj_pos, goal_pos, goal_scale))


# --------------------------------------------------------------------------- handover


def newly_completed_stages(prev_progress: torch.Tensor, progress: torch.Tensor,
                           n_stages: int = HANDOVER_STAGES) -> torch.Tensor:
    """(N, n_stages) bool: stage k was completed at this step (prev_progress <= k < progress).

    ``progress`` counts completed stages (success.handover_step keeps it monotone), so each stage
    is flagged exactly once per episode, which is what makes the bonus a one-off payment.
    """
    prev = torch.as_tensor(prev_progress)
    cur = torch.as_tensor(progress)
    if prev.ndim != 1 or prev.shape != cur.shape:
        raise ValueError(f"prev_progress and progress must both be (N,), got {tuple(prev.shape)}, "
                         f"{tuple(cur.shape)}")
    k = torch.arange(n_stages, device=cur.device)
    return (prev[:, None] <= k) & (k < cur[:, None])


def handover_reward(stage: torch.Tensor, contact_a: torch.Tensor, goal_a: torch.Tensor,
                    contact_b: torch.Tensor, goal_b: torch.Tensor,
                    stage_bonuses: Sequence[float], completed: torch.Tensor) -> torch.Tensor:
    """Eq. 4 -> (N,).

    stage: (N,) the paper's a in {0, 1} (0 while hand A carries to the transfer point).
    contact_*/goal_*: (N,) terms already computed for hand A with o_A's stickers/goal and hand B
    with o_B's (``hand_contact_reward``, ``goal_reward``).
    completed: (N, K) bool from ``newly_completed_stages``; env n gets stage_bonuses[k] for every
    stage k flagged this step.
    """
    a = torch.as_tensor(stage)
    n = a.shape[0] if a.ndim == 1 else -1
    if a.ndim != 1:
        raise ValueError(f"stage must have shape (N,), got {tuple(a.shape)}")
    if bool(((a != 0) & (a != 1)).any()):
        raise ValueError(f"stage must be 0 or 1, got values {torch.unique(a).tolist()}")
    terms = {"contact_a": contact_a, "goal_a": goal_a, "contact_b": contact_b, "goal_b": goal_b}
    for name, t in terms.items():
        terms[name] = torch.as_tensor(t)
        if terms[name].shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {tuple(terms[name].shape)}")
    bonuses = torch.as_tensor(list(stage_bonuses), dtype=terms["contact_a"].dtype)
    done = torch.as_tensor(completed)
    if done.shape != (n, bonuses.shape[0]):
        raise ValueError(f"completed must have shape ({n}, {bonuses.shape[0]}) (one column per stage bonus), "
                         f"got {tuple(done.shape)}")
    a = a.to(bonuses.dtype)
    bonus = (done.to(bonuses.dtype) * bonuses).sum(dim=-1)
    return ((1.0 - a) * (terms["contact_a"] + terms["goal_a"]) + a * (terms["contact_b"] + terms["goal_b"])
            + bonus)


# --------------------------------------------------------------------------- regularizers


def action_rate_penalty(action: torch.Tensor, prev_action: torch.Tensor, weight: float) -> torch.Tensor:
    """-weight * ||a_t - a_{t-1}||^2 -> (N,): discourages jerky targets that the real PD loop
    cannot follow at 5-10 Hz (the gap would be a sim-to-real mismatch)."""
    a, b = torch.as_tensor(action), torch.as_tensor(prev_action)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"action and prev_action must be equal (N, A) shapes, got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    return -weight * ((a - b) ** 2).sum(dim=-1)


def arm_joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the 14 arm joints in action order (radians), from robot_spec.

    Hands are left out of the joint-limit penalty on purpose: an open hand sits at a joint limit
    by construction (normalized 0 maps to the limit), so it would be penalised for being open.
    """
    lower, upper = robot_spec.actuated_limits()
    n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
    return lower[:n_arm], upper[:n_arm]


def joint_limit_penalty(q: torch.Tensor, lower: np.ndarray | torch.Tensor, upper: np.ndarray | torch.Tensor,
                        margin: float, weight: float) -> torch.Tensor:
    """-weight * sum_j (depth_j / m_j)^2 -> (N,), depth_j how far joint j is inside the band of width
    m_j = margin * (upper_j - lower_j) next to either limit.

    Zero in the interior, 1 per joint at a limit: the real arm's soft stops and cable strain make
    limit-hugging poses unreliable, but the penalty leaves the useful range untouched.
    """
    if not 0.0 < margin < 0.5:
        raise ValueError(f"joint limit margin must be in (0, 0.5) of the range, got {margin}")
    qt = torch.as_tensor(q)
    lo = torch.as_tensor(lower, dtype=qt.dtype, device=qt.device)
    hi = torch.as_tensor(upper, dtype=qt.dtype, device=qt.device)
    if qt.ndim != 2 or lo.shape != (qt.shape[1],) or hi.shape != lo.shape:
        raise ValueError(f"q must be (N, J) with lower/upper (J,), got {tuple(qt.shape)}, {tuple(lo.shape)}, "
                         f"{tuple(hi.shape)}")
    if bool((hi <= lo).any()):
        raise ValueError("joint limits need upper > lower for every joint")
    m = margin * (hi - lo)
    depth = torch.relu(lo + m - qt) + torch.relu(qt - (hi - m))
    return -weight * ((depth / m) ** 2).sum(dim=-1)


def object_dropped_penalty(dropped: torch.Tensor, penalty: float) -> torch.Tensor:
    """-penalty where the object fell off the table (success.object_fell) -> (N,).

    Paid on the terminating step so that dropping is worse than any reward the episode could
    still have earned; without it, ending the episode early can look attractive when r_goal < 0.
    """
    d = torch.as_tensor(dropped)
    if d.ndim != 1:
        raise ValueError(f"dropped must have shape (N,), got {tuple(d.shape)}")
    return -penalty * d.to(torch.get_default_dtype())


# --------------------------------------------------------------------------- configuration

_WEIGHT_KEYS = ("contact_alpha", "contact_beta", "goal_scale", "action_rate_weight", "joint_limit_weight",
                "joint_limit_margin", "drop_penalty")


@dataclass(frozen=True)
class RewardConfig:
    """Reward weights and success thresholds of one task (a ``tasks.<task>`` block of rewards.yaml)."""

    task: str
    contact_alpha: float  # 1/m, left hand (Eq. 1)
    contact_beta: float  # 1/m, right hand (Eq. 1)
    goal_scale: float  # 1/m
    action_rate_weight: float
    joint_limit_weight: float
    joint_limit_margin: float  # fraction of each joint's range
    drop_penalty: float
    stage_bonuses: tuple[float, ...] = ()  # handover only, one per stage, increasing
    lift_weight: float = 0.0  # grasp_reach, box_lift: r_lift per step at full lift (0 = paper's reward)
    lift_goal_distance: float | None = None  # m: r_lift *= exp(-d_goal / this); None = no goal factor
    success: SuccessParams = field(default_factory=SuccessParams)

    @classmethod
    def from_dict(cls, task: str, data: Mapping[str, Any]) -> RewardConfig:
        where = f"tasks.{task}"
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a mapping, got {type(data).__name__}")
        optional = ["stage_bonuses", "lift_weight", "lift_goal_distance", "success"]
        check_keys(data, [*_WEIGHT_KEYS, *optional], where, required=_WEIGHT_KEYS)
        kw: dict[str, Any] = {k: as_float(data[k], f"{where}.{k}", minimum=0.0) for k in _WEIGHT_KEYS}
        for k in ("contact_alpha", "contact_beta"):
            if kw[k] == 0.0:
                raise ValueError(f"{where}.{k} must be > 0")
        if not 0.0 < kw["joint_limit_margin"] < 0.5:
            raise ValueError(f"{where}.joint_limit_margin must be in (0, 0.5), "
                             f"got {kw['joint_limit_margin']}")
        kw["stage_bonuses"] = _parse_bonuses(task, data.get("stage_bonuses"), f"{where}.stage_bonuses")
        if "lift_weight" in data:
            if task == "handover":
                raise ValueError(f"{where}.lift_weight: handover pays stage bonuses, not a lift term")
            kw["lift_weight"] = as_float(data["lift_weight"], f"{where}.lift_weight", minimum=0.0)
        if data.get("lift_goal_distance") is not None:
            if task == "handover":
                raise ValueError(f"{where}.lift_goal_distance: handover has no lift term")
            kw["lift_goal_distance"] = as_float(
                data["lift_goal_distance"], f"{where}.lift_goal_distance", minimum=0.0, exclusive=True
            )
        kw["success"] = SuccessParams.from_dict(data.get("success"), f"{where}.success")
        return cls(task=task, **kw)

    @classmethod
    def load(cls, task: str, path: str | Path | None = None) -> RewardConfig:
        """The config of one task from config/rewards.yaml (or ``path``)."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
        return load_reward_configs(path)[task]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in _WEIGHT_KEYS}
        if self.stage_bonuses:
            out["stage_bonuses"] = list(self.stage_bonuses)
        if self.lift_weight:
            out["lift_weight"] = self.lift_weight
        if self.lift_goal_distance is not None:
            out["lift_goal_distance"] = self.lift_goal_distance
        out["success"] = self.success.to_dict()
        return out


def _parse_bonuses(task: str, value: Any, where: str) -> tuple[float, ...]:
    if task != "handover":
        if value not in (None, []):
            raise ValueError(f"{where} is only meaningful for the handover task")
        return ()
    if not isinstance(value, list) or len(value) != HANDOVER_STAGES:
        raise ValueError(f"{where} must be a list of {HANDOVER_STAGES} numbers, got {value!r}")
    bonuses = tuple(as_float(v, f"{where}[{i}]", minimum=0.0) for i, v in enumerate(value))
    if any(b >= c for b, c in itertools.pairwise(bonuses)):
        raise ValueError(f"{where} must grow with the stage (strictly increasing), got {list(bonuses)}")
    return bonuses


def load_reward_configs(path: str | Path | None = None) -> dict[str, RewardConfig]:
    """All tasks of config/rewards.yaml (or ``path``), validated; every task in TASKS must be present."""
    path = config_path(CONFIG_FILE) if path is None else Path(path)
    data = load_yaml(path, FORMAT)
    try:
        check_keys(data, ["format", "tasks"], "rewards", required=["tasks"])
        tasks = data["tasks"]
        if not isinstance(tasks, Mapping):
            raise ValueError(f"tasks must be a mapping, got {type(tasks).__name__}")
        check_keys(tasks, TASKS, "tasks", required=TASKS)
        return {task: RewardConfig.from_dict(task, tasks[task]) for task in TASKS}
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
