"""Per-dimension affine normalization fitted on the dataset and stored in the checkpoint.

Diffusion works in a fixed numeric range: actions are mapped to [-1, 1] per dimension (min/max, as
Diffusion Policy does, so the DDPM's sample clipping to [-1, 1] is the data's own range), state inputs
likewise. The statistics are buffers of the module, so they travel with the weights in the safetensors
checkpoint and the deployed policy normalizes exactly as training did.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MIN_HALF_RANGE = 1e-2  # a dimension that barely moves (the held idle arm) is not blown up into noise


class RangeNormalizer(nn.Module):
    """x -> (x - centre) / half_range, per last-axis dimension."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("half_range", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, data: np.ndarray | torch.Tensor) -> RangeNormalizer:
        x = torch.as_tensor(np.asarray(data), dtype=torch.float32).reshape(-1, self.centre.shape[0])
        if x.shape[0] == 0 or not torch.isfinite(x).all():
            raise ValueError("normalizer: need a non-empty, finite sample to fit")
        lo, hi = x.min(dim=0).values, x.max(dim=0).values
        self.centre.copy_((hi + lo) / 2)
        self.half_range.copy_(torch.clamp((hi - lo) / 2, min=MIN_HALF_RANGE))
        self.fitted.fill_(True)
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.centre) / self.half_range

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.half_range + self.centre
