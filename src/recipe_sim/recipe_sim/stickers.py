"""Contact stickers: points placed procedurally on an object primitive's surface (paper, Rewards).

The contact reward pulls fingertips towards these points, so *where* they sit decides the grasp
the policy learns (side centres give a side grasp, top/bottom a pinch over the caps, bottom edges a
scoop). Points are generated in the object's local frame once per object and moved to the world
frame every step with the object pose (``stickers_world``).

Shapes follow MuJoCo geom ``size`` conventions: box half-extents ``(hx, hy, hz)``, cylinder
``(radius, half_height)`` with its axis along local z, sphere ``(radius,)``. Generation is fully
deterministic (no random numbers): the same (shape, size, placement, n) always gives the same points,
so a trained policy sees the same stickers at evaluation time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

SHAPES: dict[str, int] = {"box": 3, "cylinder": 2, "sphere": 1}  # shape -> len(size)
PLACEMENTS: tuple[str, ...] = ("side_centres", "top_bottom", "bottom_edges", "all")

# Natural number of points per placement when n is not given.
DEFAULT_COUNTS: dict[tuple[str, str], int] = {
    ("box", "side_centres"): 4,
    ("cylinder", "side_centres"): 8,
    ("sphere", "side_centres"): 8,
    ("box", "top_bottom"): 2,
    ("cylinder", "top_bottom"): 2,
    ("sphere", "top_bottom"): 2,
    ("box", "bottom_edges"): 8,
    ("cylinder", "bottom_edges"): 8,
    ("sphere", "bottom_edges"): 8,
    ("box", "all"): 32,
    ("cylinder", "all"): 32,
    ("sphere", "all"): 32,
}

_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
_PLASTIC = 1.324717957244746  # generator of the R2 low-discrepancy sequence
# A sphere has no cap or rim: the pole neighbourhood and the ring 45 degrees below the equator
# stand in for them (the ring is where a scoop from the table meets the ball).
_SPHERE_CAP_RING_POLAR = math.pi / 6.0
_SPHERE_BOTTOM_RING_POLAR = 3.0 * math.pi / 4.0


def validate_size(shape: str, size: Sequence[float]) -> np.ndarray:
    """Check a primitive's shape name and MuJoCo size vector; returns the size as float64."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {sorted(SHAPES)}")
    arr = np.asarray(size, dtype=np.float64).reshape(-1)
    if arr.size != SHAPES[shape]:
        raise ValueError(f"{shape} size needs {SHAPES[shape]} values, got {arr.size}: {list(arr)}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0):
        raise ValueError(f"{shape} size values must be finite and positive, got {list(arr)}")
    return arr


def make_stickers(shape: str, size: Sequence[float], placement: str, n: int | None = None) -> np.ndarray:
    """Sticker points (n, 3) on the primitive's surface, object-local frame, metres.

    Placements:
      * ``side_centres``: box side-face centres (more points spread along each face's horizontal
        midline), cylinder ring at mid-height, sphere equator.
      * ``top_bottom``: top and bottom face/cap centres (sphere poles); extra points on a ring
        around each centre, alternating top and bottom.
      * ``bottom_edges``: points spaced evenly along the bottom edges (box) or bottom rim (cylinder);
        a ring 45 degrees below the equator for a sphere.
      * ``all``: near-uniform coverage of the whole surface (area-weighted per face).
    """
    arr = validate_size(shape, size)
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown sticker placement {placement!r}; expected one of {list(PLACEMENTS)}")
    if n is None:
        n = DEFAULT_COUNTS[(shape, placement)]
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"sticker count n must be a positive integer, got {n!r}")
    n = int(n)
    builder = _BUILDERS[(shape, placement)]
    pts = builder(arr, n)
    assert pts.shape == (n, 3), pts.shape
    return pts


def signed_distance(shape: str, size: Sequence[float], points: np.ndarray) -> np.ndarray:
    """Signed distance (metres, negative inside) of local-frame points (..., 3) to the primitive."""
    arr = validate_size(shape, size)
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError(f"points must have a last dimension of 3, got shape {p.shape}")
    if shape == "sphere":
        return np.linalg.norm(p, axis=-1) - arr[0]
    if shape == "box":
        q = np.abs(p) - arr
    else:
        q = np.stack([np.linalg.norm(p[..., :2], axis=-1) - arr[0], np.abs(p[..., 2]) - arr[1]], axis=-1)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(np.max(q, axis=-1), 0.0)
    return outside + inside


def quat_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) of unit quaternions (N, 4) in MuJoCo's wxyz order."""
    w, x, y, z = quat.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def as_points(name: str, x: torch.Tensor | np.ndarray, n_envs: int | None = None) -> torch.Tensor:
    """Validate a batched point set (N, k, 3) and return it as a float tensor.

    Shared by rewards and success detectors so a wrong shape fails with the argument's name
    instead of a broadcasting error deep inside a reduction.
    """
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.ndim != 3 or t.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, k, 3), got {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} holds no points (shape {tuple(t.shape)})")
    if n_envs is not None and t.shape[0] != n_envs:
        raise ValueError(f"{name} has {t.shape[0]} envs, expected {n_envs}")
    return t


def as_positions(name: str, x: torch.Tensor | np.ndarray, n_envs: int | None = None,
                 allow_shared: bool = False) -> torch.Tensor:
    """Validate positions (N, 3) (or one shared (3,) position when allow_shared) -> (N, 3) tensor."""
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if allow_shared and t.ndim == 1 and t.shape[0] == 3 and n_envs is not None:
        return t.expand(n_envs, 3)
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {tuple(t.shape)}")
    if n_envs is not None and t.shape[0] != n_envs:
        raise ValueError(f"{name} has {t.shape[0]} envs, expected {n_envs}")
    return t


def stickers_world(stickers_local: torch.Tensor | np.ndarray, obj_pos: torch.Tensor | np.ndarray,
                   obj_quat: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Move local stickers (n, 3) shared by all envs, or (N, n, 3) per env, to the world: (N, n, 3).

    obj_quat is wxyz (MuJoCo's order) and is normalised here, because quaternions read back from
    a simulator drift slightly off unit length.
    """
    pos = as_positions("obj_pos", obj_pos)
    n_envs = pos.shape[0]
    quat = torch.as_tensor(obj_quat, dtype=pos.dtype, device=pos.device)
    if quat.ndim != 2 or quat.shape != (n_envs, 4):
        raise ValueError(f"obj_quat must have shape ({n_envs}, 4) (wxyz), got {tuple(quat.shape)}")
    norm = torch.linalg.vector_norm(quat, dim=-1, keepdim=True)
    if bool((norm < 1e-9).any()):
        raise ValueError("obj_quat contains a zero-length quaternion")
    rot_t = quat_to_matrix(quat / norm).transpose(1, 2)
    local = torch.as_tensor(stickers_local, dtype=pos.dtype, device=pos.device)
    if local.ndim == 2:
        if local.shape[-1] != 3:
            raise ValueError(f"stickers_local must have shape (n, 3) or (N, n, 3), got {tuple(local.shape)}")
    else:
        local = as_points("stickers_local", local, n_envs)
    # (n, 3) @ (N, 3, 3) broadcasts to (N, n, 3): a batched matmul is ~4x faster than quaternion
    # cross products at N = 4096
    return torch.matmul(local, rot_t) + pos[:, None, :]


def min_dist(points: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d(A, x_i) = min_j ||A_j - x_i||_2 for every query x_i: A (N, n, 3), x (N, m, 3) -> (N, m).

    Computed from explicit differences rather than torch.cdist, whose matrix-product path loses
    millimetre precision exactly where the contact reward is steepest (near zero distance).
    """
    a = as_points("stickers", points)
    q = as_points("fingertips", x, a.shape[0])
    diff = q[:, :, None, :] - a[:, None, :, :]
    return torch.linalg.vector_norm(diff, dim=-1).amin(dim=-1)


# --------------------------------------------------------------------------- generators


def _ring(radius: float, z: float, n: int, phase: float = 0.0) -> np.ndarray:
    theta = phase + 2.0 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(theta), radius * np.sin(theta), np.full(n, z)], axis=-1)


def _disc_pattern(k: int, ring_radius: float) -> np.ndarray:
    """k 2-D offsets: the centre first, then the rest evenly on a ring."""
    if k == 0:
        return np.zeros((0, 2))
    out = [np.zeros((1, 2))]
    if k > 1:
        out.append(_ring(ring_radius, 0.0, k - 1)[:, :2])
    return np.concatenate(out, axis=0)


def _split_alternating(n: int) -> tuple[int, int]:
    """Counts for (top, bottom) when points alternate top, bottom, top, ..."""
    return (n + 1) // 2, n // 2


def _allocate(n: int, weights: Sequence[float]) -> list[int]:
    """Split n points over parts proportionally to weights (largest remainder, ties by order)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    remainder = exact - counts
    for idx in np.argsort(-remainder, kind="stable")[: n - counts.sum()]:
        counts[idx] += 1
    return [int(c) for c in counts]


def _r2(k: int) -> np.ndarray:
    """First k points of the R2 low-discrepancy sequence in [0, 1)^2 (even coverage for any k)."""
    i = np.arange(k, dtype=np.float64)
    return np.stack([(0.5 + i / _PLASTIC) % 1.0, (0.5 + i / _PLASTIC**2) % 1.0], axis=-1)


def _box_side_centres(h: np.ndarray, n: int) -> np.ndarray:
    # faces +x, +y, -x, -y; face f gets points along its horizontal midline (z = 0)
    counts = [n // 4 + (f < n % 4) for f in range(4)]
    pts = []
    for f, k in enumerate(counts):
        t = (2.0 * np.arange(k) + 1.0) / max(k, 1) - 1.0
        sign = 1.0 if f < 2 else -1.0
        if f % 2 == 0:
            pts.append(np.stack([np.full(k, sign * h[0]), t * h[1], np.zeros(k)], axis=-1))
        else:
            pts.append(np.stack([t * h[0], np.full(k, sign * h[1]), np.zeros(k)], axis=-1))
    # interleave faces so that points are spread over all four sides, whatever n is
    return _interleave(pts, n)


def _interleave(groups: list[np.ndarray], n: int) -> np.ndarray:
    out = []
    for i in range(max(len(g) for g in groups)):
        out.extend(g[i] for g in groups if i < len(g))
    return np.asarray(out[:n], dtype=np.float64).reshape(n, 3)


def _top_bottom_flat(half_height: float, ring_radius: float, n: int) -> np.ndarray:
    k_top, k_bot = _split_alternating(n)
    top = np.concatenate([_disc_pattern(k_top, ring_radius), np.full((k_top, 1), half_height)], axis=1)
    bot = np.concatenate([_disc_pattern(k_bot, ring_radius), np.full((k_bot, 1), -half_height)], axis=1)
    return _interleave([top, bot], n)


def _box_top_bottom(h: np.ndarray, n: int) -> np.ndarray:
    return _top_bottom_flat(h[2], 0.5 * min(h[0], h[1]), n)


def _cylinder_top_bottom(s: np.ndarray, n: int) -> np.ndarray:
    return _top_bottom_flat(s[1], 0.5 * s[0], n)


def _sphere_top_bottom(s: np.ndarray, n: int) -> np.ndarray:
    r = s[0]
    k_top, k_bot = _split_alternating(n)
    groups = []
    for k, sign in ((k_top, 1.0), (k_bot, -1.0)):
        pole = np.array([[0.0, 0.0, sign * r]])
        ring = _ring(r * math.sin(_SPHERE_CAP_RING_POLAR), sign * r * math.cos(_SPHERE_CAP_RING_POLAR),
                     max(k - 1, 0))
        groups.append(np.concatenate([pole, ring], axis=0)[:k])
    return _interleave(groups, n)


def _box_bottom_edges(h: np.ndarray, n: int) -> np.ndarray:
    # walk the bottom rectangle counter-clockwise from the middle of the +x edge
    corners = np.array([[h[0], 0.0], [h[0], h[1]], [-h[0], h[1]], [-h[0], -h[1]], [h[0], -h[1]], [h[0], 0.0]])
    seg = np.linalg.norm(np.diff(corners, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = cum[-1] * np.arange(n) / n
    xy = np.stack([np.interp(s, cum, corners[:, 0]), np.interp(s, cum, corners[:, 1])], axis=-1)
    return np.concatenate([xy, np.full((n, 1), -h[2])], axis=1)


def _box_all(h: np.ndarray, n: int) -> np.ndarray:
    # faces: (normal axis, sign); the two remaining axes span the face
    faces = [(a, sgn) for a in range(3) for sgn in (1.0, -1.0)]
    areas = [4.0 * np.prod(np.delete(h, a)) for a, _ in faces]
    pts = []
    for (axis, sign), k in zip(faces, _allocate(n, areas)):
        uv = 2.0 * _r2(k) - 1.0
        tangent = [i for i in range(3) if i != axis]
        p = np.zeros((k, 3))
        p[:, axis] = sign * h[axis]
        p[:, tangent[0]] = uv[:, 0] * h[tangent[0]]
        p[:, tangent[1]] = uv[:, 1] * h[tangent[1]]
        pts.append(p)
    return np.concatenate(pts, axis=0)


def _sunflower(k: int, radius: float) -> np.ndarray:
    i = np.arange(k, dtype=np.float64)
    rho = radius * np.sqrt((i + 0.5) / max(k, 1))
    phi = i * _GOLDEN_ANGLE
    return np.stack([rho * np.cos(phi), rho * np.sin(phi)], axis=-1)


def _cylinder_all(s: np.ndarray, n: int) -> np.ndarray:
    r, hh = s
    k_side, k_top, k_bot = _allocate(n, [4.0 * math.pi * r * hh, math.pi * r * r, math.pi * r * r])
    uv = _r2(k_side)
    theta = 2.0 * math.pi * uv[:, 0]
    side = np.stack([r * np.cos(theta), r * np.sin(theta), hh * (2.0 * uv[:, 1] - 1.0)], axis=-1)
    top = np.concatenate([_sunflower(k_top, r), np.full((k_top, 1), hh)], axis=1)
    bot = np.concatenate([_sunflower(k_bot, r), np.full((k_bot, 1), -hh)], axis=1)
    return np.concatenate([side, top, bot], axis=0)


def _sphere_all(s: np.ndarray, n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    rho = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = i * _GOLDEN_ANGLE
    return s[0] * np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=-1)


def _sphere_ring(polar: float):
    def build(s: np.ndarray, n: int) -> np.ndarray:
        return _ring(s[0] * math.sin(polar), s[0] * math.cos(polar), n)

    return build


_BUILDERS = {
    ("box", "side_centres"): _box_side_centres,
    ("cylinder", "side_centres"): lambda s, n: _ring(s[0], 0.0, n),
    ("sphere", "side_centres"): _sphere_ring(math.pi / 2.0),
    ("box", "top_bottom"): _box_top_bottom,
    ("cylinder", "top_bottom"): _cylinder_top_bottom,
    ("sphere", "top_bottom"): _sphere_top_bottom,
    ("box", "bottom_edges"): _box_bottom_edges,
    ("cylinder", "bottom_edges"): lambda s, n: _ring(s[0], -s[1], n),
    ("sphere", "bottom_edges"): _sphere_ring(_SPHERE_BOTTOM_RING_POLAR),
    ("box", "all"): _box_all,
    ("cylinder", "all"): _cylinder_all,
    ("sphere", "all"): _sphere_all,
}
