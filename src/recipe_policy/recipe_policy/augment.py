"""Modality-specific augmentation (paper Sec. III-D): what differs between the sim's and the D435's inputs.

Rendered depth is perfect; a real D435 frame after ``to_policy_image`` still has stereo noise that grows
with distance, missing patches (specular or dark surfaces, filled with the far value), occluders, flying
pixels and shadows at depth edges, and a slightly different view (the camera mount is never where the
model says). The state input gets the object-position noise of perception (Table IV: 0.02 m) and a
little joint noise. Image augmentations act per image, except the shift, which is one camera pose per
observation window. Everything is batched torch on (B, n, H, W) metres.
"""

from __future__ import annotations

import torch

from recipe_policy.config import DepthAugmentation, StateAugmentation

EDGE_JUMP_M = 0.05  # a neighbour differing by more than this is a depth edge
EDGE_DROP = 0.5  # fraction of edge pixels dropped when the edge artefact applies


def _chance(p: float, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g) < p


def augment_depth(
    d: torch.Tensor, cfg: DepthAugmentation, near: float, far: float, g: torch.Generator
) -> torch.Tensor:
    """(B, n, H, W) metres -> augmented copy, clipped to [near, far]."""
    b, n, h, w = d.shape
    x = d.clone()
    # Stereo noise: std proportional to depth squared.
    if cfg.noise_probability > 0 and cfg.noise_std_m > 0:
        on = _chance(cfg.noise_probability, (b, n, 1, 1), g)
        x = x + on * torch.randn(x.shape, generator=g) * cfg.noise_std_m * x * x
    # Flying pixels / shadows at depth edges: a fraction of edge pixels reads far.
    if cfg.edge_probability > 0:
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs() > EDGE_JUMP_M
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs() > EDGE_JUMP_M
        edge = torch.zeros_like(x, dtype=torch.bool)
        edge[..., :, 1:] |= dx
        edge[..., :, :-1] |= dx
        edge[..., 1:, :] |= dy
        edge[..., :-1, :] |= dy
        on = _chance(cfg.edge_probability, (b, n, 1, 1), g)
        drop = edge & on & _chance(EDGE_DROP, tuple(x.shape), g)
        x = torch.where(drop, torch.full_like(x, far), x)
    yy = torch.arange(h).view(1, 1, h, 1).float()
    xx = torch.arange(w).view(1, 1, 1, w).float()
    # Holes: up to max_holes discs of missing depth (to_policy_image fills what it cannot with far_m).
    if cfg.hole_probability > 0 and cfg.max_holes > 0:
        on = _chance(cfg.hole_probability, (b, n, 1, 1), g)
        hole = torch.zeros_like(x, dtype=torch.bool)
        for _ in range(cfg.max_holes):
            cy = torch.rand((b, n, 1, 1), generator=g) * h
            cx = torch.rand((b, n, 1, 1), generator=g) * w
            r = 0.5 + torch.rand((b, n, 1, 1), generator=g) * (0.08 * min(h, w))
            use = _chance(0.5, (b, n, 1, 1), g)
            hole |= use & (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r)
        x = torch.where(hole & on, torch.full_like(x, far), x)
    # Random erasing: one rectangle at a random constant depth (an occluder or a dropout region).
    if cfg.erase_probability > 0:
        on = _chance(cfg.erase_probability, (b, n, 1, 1), g)
        eh = (0.1 + 0.25 * torch.rand((b, n, 1, 1), generator=g)) * h
        ew = (0.1 + 0.25 * torch.rand((b, n, 1, 1), generator=g)) * w
        y0 = torch.rand((b, n, 1, 1), generator=g) * (h - eh)
        x0 = torch.rand((b, n, 1, 1), generator=g) * (w - ew)
        rect = (yy >= y0) & (yy < y0 + eh) & (xx >= x0) & (xx < x0 + ew) & on
        value = near + torch.rand((b, n, 1, 1), generator=g) * (far - near)
        x = torch.where(rect, value.expand_as(x), x)
    # Small shifts: one integer translation per window (edge pixels replicated).
    if cfg.shift_probability > 0 and cfg.shift_px > 0:
        s = cfg.shift_px
        on = _chance(cfg.shift_probability, (b,), g)
        sy = torch.randint(-s, s + 1, (b,), generator=g) * on
        sx = torch.randint(-s, s + 1, (b,), generator=g) * on
        iy = (torch.arange(h).view(1, h) - sy.view(b, 1)).clamp(0, h - 1)  # (b, h)
        ix = (torch.arange(w).view(1, w) - sx.view(b, 1)).clamp(0, w - 1)  # (b, w)
        x = x.gather(2, iy.view(b, 1, h, 1).expand(b, n, h, w))
        x = x.gather(3, ix.view(b, 1, 1, w).expand(b, n, h, w))
    return x.clamp(near, far)


def augment_state(
    s: torch.Tensor, cfg: StateAugmentation, object_cols: slice, joint_cols: slice, g: torch.Generator
) -> torch.Tensor:
    """(B, n, D) policy_state rows + Gaussian object-position and joint noise (fresh per row)."""
    x = s.clone()
    if cfg.object_pos_noise_m > 0:
        x[..., object_cols] += torch.randn(x[..., object_cols].shape, generator=g) * cfg.object_pos_noise_m
    if cfg.joint_pos_noise_rad > 0:
        x[..., joint_cols] += torch.randn(x[..., joint_cols].shape, generator=g) * cfg.joint_pos_noise_rad
    return x
