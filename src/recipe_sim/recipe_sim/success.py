"""Success and failure detectors for the three tasks, pure and batched over N envs (torch).

"Held for k steps" is a per-env counter tensor that the env keeps and passes back in every policy
step: the detectors return the updated counter instead of storing it, so they stay pure and an env
reset is just ``counter[reset_ids] = 0``.

Heights are measured from each env's *rest height* ``rest_z`` (the object centre's z while it lies
on the table, e.g. its z at episode start), so one ``lift_height`` works for every object size and
for randomized shape scales.

NaN handling: detectors compare with ``<``/``>`` which are false for NaN, so a diverged env is
neither a success nor a drop; ``nonfinite_state`` flags it so the env can reset it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from recipe_common.config import as_float, as_int, check_keys
from recipe_sim.stickers import as_points, as_positions, min_dist, quat_to_matrix

# handover progress values: 0 = hand A carrying to the transfer point, 1 = hand B carrying to
# the final goal, 2 = done (success)
HANDOVER_TRANSFER_DONE = 1
HANDOVER_DONE = 2


@dataclass(frozen=True)
class SuccessParams:
    """Thresholds of one task's success/failure detectors (``success:`` block of config/rewards.yaml)."""

    goal_tolerance: float = 0.05  # m, object centre to goal
    lift_height: float = 0.05  # m above the rest height
    hold_steps: int = 5  # consecutive policy steps (0.5 s at 10 Hz)
    contact_distance: float = 0.03  # m, fingertip to nearest sticker that counts as touching
    min_tips_in_contact: int = 2  # per hand, of the 4 fingertips (thumb + one finger = a grasp)
    drop_margin: float = 0.05  # m below the table top that counts as fallen off
    max_object_distance: float = 1.0  # m from the episode anchor that counts as flown away
    table_clearance: float = 0.005  # m between the object's lowest point and the table for a lift (box_lift)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "success") -> SuccessParams:
        """Build from a (partial) mapping; missing keys keep the defaults, unknown keys are errors."""
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a mapping, got {type(data).__name__}")
        check_keys(data, cls.__dataclass_fields__, where)
        kw = asdict(cls())
        for key, value in data.items():
            name = f"{where}.{key}"
            if key in ("hold_steps", "min_tips_in_contact"):
                kw[key] = as_int(value, name, minimum=1)
            else:
                kw[key] = as_float(value, name, minimum=0.0, exclusive=True)
        if kw["min_tips_in_contact"] > 4:
            raise ValueError(f"{where}.min_tips_in_contact must be <= 4 (fingertips per hand)")
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bool(name: str, x: torch.Tensor | np.ndarray, n_envs: int) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.shape != (n_envs,):
        raise ValueError(f"{name} must have shape ({n_envs},), got {tuple(t.shape)}")
    return t.to(torch.bool)


def _counter(counter: torch.Tensor | np.ndarray, n_envs: int) -> torch.Tensor:
    c = torch.as_tensor(counter)
    if c.shape != (n_envs,):
        raise ValueError(f"counter must have shape ({n_envs},), got {tuple(c.shape)}")
    if c.is_floating_point() or c.dtype == torch.bool:
        raise ValueError(f"counter must be an integer tensor, got {c.dtype}")
    return c


def _rest_z(rest_z: torch.Tensor | np.ndarray | float, like: torch.Tensor) -> torch.Tensor:
    z = torch.as_tensor(rest_z, dtype=like.dtype, device=like.device)
    if z.ndim == 0:
        return z.expand(like.shape[0])
    if z.shape != (like.shape[0],):
        raise ValueError(f"rest_z must be a scalar or shape ({like.shape[0]},), got {tuple(z.shape)}")
    return z


def update_hold_counter(counter: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """counter + 1 where the condition holds this step, else 0 (consecutive steps only)."""
    c = torch.as_tensor(counter)
    if c.ndim != 1:
        raise ValueError(f"counter must have shape (N,), got {tuple(c.shape)}")
    c = _counter(c, c.shape[0])
    cond = _bool("condition", condition, c.shape[0])
    return torch.where(cond, c + 1, torch.zeros_like(c))


def object_lifted(obj_pos: torch.Tensor, rest_z: torch.Tensor | float, lift_height: float) -> torch.Tensor:
    """(N,) bool: object centre at least lift_height above its rest height."""
    p = as_positions("obj_pos", obj_pos)
    return p[:, 2] - _rest_z(rest_z, p) >= lift_height


def object_at_goal(obj_pos: torch.Tensor, goal_pos: torch.Tensor, tolerance: float) -> torch.Tensor:
    """(N,) bool: object centre within tolerance (m) of the goal."""
    p = as_positions("obj_pos", obj_pos)
    g = as_positions("goal_pos", goal_pos, p.shape[0], allow_shared=True).to(p)
    return torch.linalg.vector_norm(p - g, dim=-1) <= tolerance


def hand_in_contact(stickers: torch.Tensor, tips: torch.Tensor, contact_distance: float,
                    min_tips: int) -> torch.Tensor:
    """(N,) bool: at least min_tips fingertips within contact_distance of their nearest sticker.

    Sticker proximity says where the hand holds (the lift terms of the rewards, the grasp_reach and handover
    detectors); box_lift's success reads the hands' contacts instead (``box_lift_success``). Pass dense
    stickers (placement "all") when the object is large compared with the sticker spacing.
    """
    d = min_dist(stickers, tips)
    return (d <= contact_distance).sum(dim=-1) >= min_tips


def grasp_reach_success(obj_pos: torch.Tensor, goal_pos: torch.Tensor, rest_z: torch.Tensor | float,
                        counter: torch.Tensor, params: SuccessParams | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Object lifted and within goal_tolerance of the goal for hold_steps steps -> (success, counter)."""
    params = params or SuccessParams()
    p = as_positions("obj_pos", obj_pos)
    c = _counter(counter, p.shape[0])
    cond = object_at_goal(p, goal_pos, params.goal_tolerance) & object_lifted(p, rest_z, params.lift_height)
    c = update_hold_counter(c, cond)
    return c >= params.hold_steps, c


def box_lift_success(obj_pos: torch.Tensor, rest_z: torch.Tensor | float, hands_touching: torch.Tensor,
                     counter: torch.Tensor, params: SuccessParams | None = None,
                     clear: torch.Tensor | np.ndarray | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Box lifted with both hands touching it for hold_steps steps -> (success, counter).

    ``hands_touching`` (N, 2) bool [left/right]: the hand touches the box (MuJoCo contacts, the model's
    contact sensors; ``Frame.hands_touching``). Contacts, not fingertips near the stickers: a box squeezed
    up between a palm and the other hand's fingers is held by both hands wherever the fingertips are (until
    2026-12-05 the detector asked for 2 fingertips of each hand within contact_distance of its stickers,
    and refused such lifts; docs/specialists.md, box_lift). ``clear`` (N,) bool, when given, must also
    hold: the box off the table (``lowest_point_clear``), so a box tipped up on one edge, its centre raised
    by lift_height while its far end still rests on the table, is not a lift.
    """
    params = params or SuccessParams()
    p = as_positions("obj_pos", obj_pos)
    c = _counter(counter, p.shape[0])
    touch = torch.as_tensor(hands_touching)
    if touch.shape != (p.shape[0], 2):
        raise ValueError(f"hands_touching must have shape ({p.shape[0]}, 2), got {tuple(touch.shape)}")
    cond = touch.to(torch.bool).all(dim=1) & object_lifted(p, rest_z, params.lift_height)
    if clear is not None:
        cond = cond & _bool("clear", clear, p.shape[0])
    c = update_hold_counter(c, cond)
    return c >= params.hold_steps, c


def lowest_point_clear(obj_pos: torch.Tensor, obj_quat: torch.Tensor, half_extents: torch.Tensor,
                       table_top: float, clearance: float) -> torch.Tensor:
    """(N,) bool: a box's lowest corner is more than ``clearance`` above the table top.

    half_extents (N, 3) are the box's half sizes; obj_quat (N, 4) wxyz. The lowest corner lies
    sum_j |R[2, j]| h_j below the centre, whatever the box's tilt.
    """
    p = as_positions("obj_pos", obj_pos)
    q = torch.as_tensor(obj_quat, dtype=p.dtype)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    below = (quat_to_matrix(q)[:, 2, :].abs() * torch.as_tensor(half_extents, dtype=p.dtype)).sum(dim=-1)
    return p[:, 2] - below > table_top + clearance


def handover_step(progress: torch.Tensor, counter: torch.Tensor, obj_pos: torch.Tensor,
                  rest_z: torch.Tensor | float, transfer_goal: torch.Tensor, final_goal: torch.Tensor,
                  stickers_b: torch.Tensor, tips_b: torch.Tensor, params: SuccessParams | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advance the handover stage machine -> (progress, counter, success).

    progress 0 -> 1 as soon as the lifted object reaches the transfer point (hand A's goal, within
    hand B's reach); 1 -> 2 (success) once hand B holds it (min_tips_in_contact tips on its
    stickers), lifted, within goal_tolerance of the final goal, for hold_steps steps. Progress never
    goes back, so the stage bonus in rewards.handover_reward is paid once per stage; the counter
    restarts at the transfer so time spent at stage 0 does not count towards the final hold.
    """
    params = params or SuccessParams()
    p = as_positions("obj_pos", obj_pos)
    n = p.shape[0]
    prog = _counter(progress, n)
    if bool(((prog < 0) | (prog > HANDOVER_DONE)).any()):
        raise ValueError(f"handover progress must be in 0..{HANDOVER_DONE}, got {prog.tolist()}")
    c = _counter(counter, n)
    lifted = object_lifted(p, rest_z, params.lift_height)
    transferred = (prog == 0) & lifted & object_at_goal(p, transfer_goal, params.goal_tolerance)
    held_by_b = hand_in_contact(as_points("stickers_b", stickers_b, n), tips_b, params.contact_distance,
                                params.min_tips_in_contact)
    final_cond = (prog == HANDOVER_TRANSFER_DONE) & lifted & held_by_b & object_at_goal(
        p, final_goal, params.goal_tolerance)
    c = torch.where(prog == HANDOVER_TRANSFER_DONE, update_hold_counter(c, final_cond), torch.zeros_like(c))
    done = (prog == HANDOVER_DONE) | ((prog == HANDOVER_TRANSFER_DONE) & (c >= params.hold_steps))
    new_prog = torch.where(done, torch.full_like(prog, HANDOVER_DONE),
                           torch.where(transferred, torch.full_like(prog, HANDOVER_TRANSFER_DONE), prog))
    return new_prog, c, done


def object_fell(obj_pos: torch.Tensor, table_height: float | torch.Tensor,
                drop_margin: float) -> torch.Tensor:
    """(N,) bool: object centre below the table top by more than drop_margin (off the table)."""
    p = as_positions("obj_pos", obj_pos)
    return p[:, 2] < torch.as_tensor(table_height, dtype=p.dtype) - drop_margin


def object_flew_away(obj_pos: torch.Tensor, anchor: torch.Tensor, max_distance: float) -> torch.Tensor:
    """(N,) bool: object farther than max_distance from the anchor (e.g. its start position)."""
    p = as_positions("obj_pos", obj_pos)
    a = as_positions("anchor", anchor, p.shape[0], allow_shared=True).to(p)
    return torch.linalg.vector_norm(p - a, dim=-1) > max_distance


def nonfinite_state(*tensors: torch.Tensor) -> torch.Tensor:
    """(N,) bool: any NaN/inf in any of the given per-env tensors (leading dim N)."""
    if not tensors:
        raise ValueError("nonfinite_state needs at least one tensor")
    ts = [torch.as_tensor(t) for t in tensors]
    n = ts[0].shape[0] if ts[0].ndim else -1
    bad = None
    for i, t in enumerate(ts):
        if t.ndim == 0 or t.shape[0] != n:
            raise ValueError(f"tensor {i} has shape {tuple(t.shape)}; every tensor needs leading dim {n}")
        flags = ~torch.isfinite(t.reshape(n, -1)).all(dim=-1)
        bad = flags if bad is None else bad | flags
    return bad


def failed(obj_pos: torch.Tensor, table_height: float | torch.Tensor, anchor: torch.Tensor,
           *state: torch.Tensor, params: SuccessParams | None = None) -> torch.Tensor:
    """(N,) bool episode failure: object fell off the table, flew away, or any state is non-finite."""
    params = params or SuccessParams()
    return (object_fell(obj_pos, table_height, params.drop_margin)
            | object_flew_away(obj_pos, anchor, params.max_object_distance)
            | nonfinite_state(obj_pos, *state))
