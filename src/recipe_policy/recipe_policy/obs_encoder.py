"""Observation encoder of the generalist: depth ResNet-18-GN + state MLP, over an observation window.

Paper (Sec. III-D): the egocentric depth image goes through a ResNet-18 with GroupNorm; proprioception and
the 3-D object position go through an MLP (512-512-512, ELU) to a 64-d feature; the features are
concatenated as the diffusion model's condition. With ``n_obs_steps`` rows, every row is encoded by the
same networks and the features of all rows are concatenated (Diffusion Policy's observation history).

The depth-only ablation (paper Table III) drops the object position from the state input
(``state_index`` keeps the other columns); the goal stays, it is a task command, not perception.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recipe_policy.resnet_gn import ResNet18GN

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "mish": nn.Mish, "gelu": nn.GELU}


def mlp(din: int, hidden: Sequence[int], dout: int, activation: str) -> nn.Sequential:
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(din, h), act()]
        din = h
    layers.append(nn.Linear(din, dout))
    return nn.Sequential(*layers)


class ObservationEncoder(nn.Module):
    """(B, n, D) normalized states and (B, n, H, W) depths in [-1, 1] -> (B, cond_dim) condition."""

    def __init__(
        self,
        state_index: Sequence[int],
        n_obs_steps: int,
        use_depth: bool,
        depth_widths: Sequence[int],
        depth_feature_dim: int,
        state_hidden: Sequence[int],
        state_feature_dim: int,
        activation: str = "elu",
    ) -> None:
        super().__init__()
        self.register_buffer("state_index", torch.as_tensor(list(state_index), dtype=torch.long))
        self.n_obs_steps = n_obs_steps
        self.state_mlp = mlp(len(state_index), state_hidden, state_feature_dim, activation)
        self.depth_net = ResNet18GN(1, depth_feature_dim, tuple(depth_widths)) if use_depth else None
        per_step = state_feature_dim + (depth_feature_dim if use_depth else 0)
        self.cond_dim = per_step * n_obs_steps

    def forward(self, states: torch.Tensor, depths: torch.Tensor | None) -> torch.Tensor:
        b, n = states.shape[:2]
        if n != self.n_obs_steps:
            raise ValueError(f"expected {self.n_obs_steps} observation steps, got {n}")
        feats = [self.state_mlp(states.index_select(-1, self.state_index))]
        if self.depth_net is not None:
            if depths is None:
                raise ValueError("this encoder needs depth images")
            d = self.depth_net(depths.reshape(b * n, 1, *depths.shape[-2:]))
            feats.append(d.reshape(b, n, -1))
        return torch.cat(feats, dim=-1).reshape(b, -1)
