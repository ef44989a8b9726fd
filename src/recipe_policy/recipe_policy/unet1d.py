"""The conditional 1-D UNet of Diffusion Policy (Chi et al. 2023): a denoiser over action chunks.

Input: a noisy chunk (B, T, A) of T actions, the diffusion step k (B,) and a global condition (B, C)
(the observation features). The chunk is convolved along time; every residual block is modulated by
FiLM (a per-channel scale and bias computed from [step embedding, condition]), which is how the
observation steers the denoising. diffusers ships no FiLM-conditioned 1-D UNet, so this is our own,
written from the paper's description: GroupNorm + Mish conv blocks, stride-2 down / transposed-conv up
sampling, skip connections, ``down_dims`` channels per level.
"""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` whose batch-1 CPU inference is one matrix product over the unfolded input.

    Why: torch runs a batch-1 Conv1d on the CPU through its slow im2col kernel (``_slow_conv2d_forward``;
    its oneDNN heuristic wants a batch > 1 or a 2-D kernel), which took 65% of the policy node's UNet pass.
    Unfolding the (short) chunk and multiplying by the flattened kernel gives the same numbers to float
    rounding, 5x faster at 256 channels (464 -> 87 us per conv, one thread). Batches (training, the sim
    evaluation's many envs) keep torch's convolution, which is faster there (oneDNN: batch 256 192 ms vs
    285 ms per UNet pass); the parameters are ``nn.Conv1d``'s, so checkpoints are unchanged.
    """

    # False: torch's convolution for every batch (the inference benchmark's peer; read when a forward runs,
    # so a traced copy keeps the path it was traced with)
    matmul_batch1: ClassVar[bool] = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.matmul_batch1 or self.training or x.shape[0] != 1 or x.device.type != "cpu"
                or self.groups != 1 or self.padding_mode != "zeros"):
            return super().forward(x)
        (k,), (stride,), (pad,), (dil,) = self.kernel_size, self.stride, self.padding, self.dilation
        if dil != 1:
            return super().forward(x)
        if pad:
            x = F.pad(x, (pad, pad))
        cols = x.unfold(2, k, stride)  # (B, Cin, L', k)
        b, cin, length, _ = cols.shape
        w = self.weight.reshape(self.out_channels, cin * k)
        y = cols.permute(0, 2, 1, 3).reshape(b, length, cin * k) @ w.t()
        if self.bias is not None:
            y = y + self.bias
        return y.transpose(1, 2)


class SinusoidalStepEmbedding(nn.Module):
    """Transformer-style sin/cos features of the (integer) diffusion step."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"step embedding dim must be even, got {dim}")
        self.dim = dim

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(half, device=k.device, dtype=torch.float32) / (half - 1)
        )
        angles = k.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvBlock1d(nn.Module):
    """Conv1d -> GroupNorm -> Mish (length preserved)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Conv1d(cin, cout, kernel, padding=kernel // 2),
            nn.GroupNorm(min(groups, cout), cout),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FiLMResidualBlock1d(nn.Module):
    """Two conv blocks; between them the features are scaled and shifted per channel by the condition."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block1 = ConvBlock1d(cin, cout, kernel, groups)
        self.block2 = ConvBlock1d(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.cout = cout

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(scale * h + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Noise (or sample) prediction for a (B, T, action_dim) chunk given step k and a (B, cond_dim) cond."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: tuple[int, ...] = (256, 512, 1024),
        kernel_size: int = 5,
        n_groups: int = 8,
        step_embed_dim: int = 128,
    ) -> None:
        super().__init__()
        if not down_dims:
            raise ValueError("down_dims must name at least one level")
        self.step_encoder = nn.Sequential(
            SinusoidalStepEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        c = step_embed_dim + cond_dim
        dims = [action_dim, *down_dims]
        levels = list(itertools.pairwise(dims))
        self.down = nn.ModuleList()
        for i, (din, dout) in enumerate(levels):
            last = i == len(levels) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        FiLMResidualBlock1d(din, dout, c, kernel_size, n_groups),
                        FiLMResidualBlock1d(dout, dout, c, kernel_size, n_groups),
                        Conv1d(dout, dout, 3, 2, 1) if not last else nn.Identity(),
                    ]
                )
            )
        mid = down_dims[-1]
        self.mid = nn.ModuleList(
            [
                FiLMResidualBlock1d(mid, mid, c, kernel_size, n_groups),
                FiLMResidualBlock1d(mid, mid, c, kernel_size, n_groups),
            ]
        )
        self.up = nn.ModuleList()
        for din, dout in reversed(levels[1:]):  # every up level undoes one halving; the top skip is unused
            self.up.append(
                nn.ModuleList(
                    [
                        FiLMResidualBlock1d(2 * dout, din, c, kernel_size, n_groups),
                        FiLMResidualBlock1d(din, din, c, kernel_size, n_groups),
                        nn.ConvTranspose1d(din, din, 4, 2, 1),
                    ]
                )
            )
        self.head = nn.Sequential(
            ConvBlock1d(down_dims[0], down_dims[0], kernel_size, n_groups),
            Conv1d(down_dims[0], action_dim, 1),
        )
        self.action_dim = action_dim
        self.cond_dim = cond_dim
        self.levels = len(levels)

    def min_horizon_multiple(self) -> int:
        """Chunk lengths must be divisible by this (one halving per level but the last)."""
        return 2 ** (self.levels - 1)

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if sample.ndim != 3 or sample.shape[-1] != self.action_dim:
            raise ValueError(f"sample must be (B, T, {self.action_dim}), got {tuple(sample.shape)}")
        if sample.shape[1] % self.min_horizon_multiple():
            raise ValueError(
                f"chunk length {sample.shape[1]} must be a multiple of {self.min_horizon_multiple()}"
            )
        if step.ndim == 0:
            step = step.expand(sample.shape[0])
        c = torch.cat([self.step_encoder(step.to(sample.device)), cond], dim=-1)
        x = sample.transpose(1, 2)  # (B, A, T): convolve along time
        skips = []
        for res1, res2, down in self.down:
            x = res2(res1(x, c), c)
            skips.append(x)
            x = down(x)
        for block in self.mid:
            x = block(x, c)
        for res1, res2, up in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(res2(res1(x, c), c))
        return self.head(x).transpose(1, 2)
