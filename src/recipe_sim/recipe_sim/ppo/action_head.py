"""A fixed affine output stage for the actor: action = offset + scale * MLP output.

The env's action is absolute joint targets (arm radians, hand 0..1). Two problems with feeding it
straight from an MLP:

* a default-initialised MLP outputs about 0, i.e. arms hanging down and hands open, far from the
  task's start pose; the offset (the env's ready-pose action) starts exploration where the task is;
* with the Gaussian's std at 0.2 rad, one Adam step on a 3x512 MLP moves the mean by several
  tenths of a std, so rsl-rl's KL-adaptive schedule drives the learning rate to its 1e-5 floor and
  still overshoots (seen in the first CPU runs). Scaling the MLP output by ~0.2 makes the same
  parameter step move the action 5x less. (That alone did not fix the adaptive schedule: at the 1e-5
  floor an update still moved the mean ~0.007 and the summed KL stayed above 2 x desired_kl, so
  config/ppo.yaml now uses a fixed learning rate.)

The stage is appended to ``actor.mlp`` with buffers only (nothing trainable), so it is saved in the
checkpoint and baked into the TorchScript/ONNX export: deployment still gets absolute joint targets.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from recipe_common import robot_spec

N_ARM = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE


class ActionAffine(nn.Module):
    """y = offset + scale * x, with fixed (buffer) offset and scale."""

    def __init__(self, offset: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        if offset.shape != scale.shape or offset.ndim != 1:
            raise ValueError(f"offset {tuple(offset.shape)} and scale {tuple(scale.shape)} must be equal 1-D")
        if not (torch.isfinite(offset).all() and torch.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("action head offset must be finite and scale finite and positive")
        self.register_buffer("offset", offset.detach().clone().float())
        self.register_buffer("scale", scale.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


def scale_vector(num_actions: int, arm_scale: float, hand_scale: float) -> torch.Tensor:
    """Per-action scale in the robot_spec layout: arms first (radians), then hands (normalized)."""
    scale = torch.full((num_actions,), float(hand_scale))
    scale[: min(N_ARM, num_actions)] = float(arm_scale)
    return scale


def ready_pose_action(env: Any) -> torch.Tensor:
    """The env's ready pose as an action vector (needs ``env.ready_q``, as RecipeVecEnv has)."""
    ready_q = getattr(env, "ready_q", None)
    if ready_q is None:
        raise ValueError(
            "action_head.offset 'ready_pose' needs an env with a 'ready_q' attribute; use 'zero'"
        )
    action = robot_spec.joint_targets_to_action(ready_q, getattr(env, "hand", robot_spec.DEFAULT_HAND))
    return torch.as_tensor(action, dtype=torch.float32).reshape(-1)


def install_action_head(
    actor: nn.Module, offset: torch.Tensor, scale: torch.Tensor, output_gain: float | None = None
) -> ActionAffine:
    """Append the affine stage to ``actor.mlp``; with ``output_gain`` also shrink the last layer.

    ``output_gain`` (for a fresh actor) scales the last Linear layer's weights and zeroes its bias, so
    the initial mean action is about ``offset`` whatever the observation. Leave it None when the
    weights will be loaded from a checkpoint.
    """
    mlp = actor.mlp
    if any(isinstance(m, ActionAffine) for m in mlp):
        raise ValueError("the actor already has an action head")
    last = [m for m in mlp if isinstance(m, nn.Linear)][-1]
    if last.out_features != offset.numel():
        raise ValueError(f"action head has {offset.numel()} entries, the actor outputs {last.out_features}")
    if output_gain is not None:
        with torch.no_grad():
            last.weight.mul_(output_gain)
            last.bias.zero_()
    head = ActionAffine(offset, scale).to(last.weight.device)
    mlp.add_module(str(len(mlp)), head)
    return head


def set_action_std(actor: torch.nn.Module, arm_std: float, hand_std: float | None = None) -> None:
    """Set the Gaussian std of the arm entries (and the hand entries, when given) of the actor.

    One std for all 26 entries does not fit both units: 0.2 normalized hand units is a modest finger
    perturbation, but 0.2 rad of independent noise per arm joint and 10 Hz step jerks the palm by
    ~10 cm and knocks the object off the table in about half the episodes of a ready-pose policy.
    A checkpoint loaded later overwrites this with its learned std.
    """
    dist = getattr(actor, "distribution", None)
    stds = [(slice(0, N_ARM), arm_std)] + ([] if hand_std is None else [(slice(N_ARM, None), hand_std)])
    with torch.no_grad():
        for rows, std in stds:
            if not std > 0:
                raise ValueError(f"action std must be > 0, got {std}")
            if hasattr(dist, "log_std_param"):
                dist.log_std_param[rows] = math.log(std)
            elif hasattr(dist, "std_param"):
                dist.std_param[rows] = std
            else:
                raise ValueError("setting the action std needs a Gaussian actor with a std parameter")
