"""ResNet-18 with GroupNorm, the depth encoder of the recipe's diffusion policy.

The paper swaps BatchNorm for GroupNorm (as Diffusion Policy does) because batch statistics interact
badly with the EMA weights used at deployment and with small, correlated batches of a trajectory.
torchvision has no CPU build here, so this is our own module (same layer layout as torchvision's
resnet18: 11.2M parameters with a 1-channel input).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int, groups: int = 16) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(groups, channels // 4), num_channels=channels)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18GN(nn.Module):
    """(B, in_channels, H, W) depth images -> (B, out_dim) features (global average pooled, projected)."""

    def __init__(self, in_channels: int = 1, out_dim: int = 512,
                 widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), _norm(widths[0]), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        layers = []
        cin = widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, w, stride), BasicBlock(w, w, 1)]
            cin = w
        self.layers = nn.Sequential(*layers)
        self.proj = nn.Identity() if out_dim == cin else nn.Linear(cin, out_dim)
        self.in_channels = in_channels
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        y = self.layers(self.stem(x))
        return self.proj(y.mean(dim=(2, 3)))
