"""The table plane: RANSAC on 3D points, refined by least squares; pure numpy.

The tripod camera does not move, so the plane of the previous frame is tried first and a handful of
random hypotheses only have to beat it; a refit costs a few milliseconds on the subsampled points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plane:
    """n . p + d = 0 with unit normal n pointing up (n_z > 0 in base_link)."""

    normal: np.ndarray
    d: float
    inlier_fraction: float = 0.0

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed distance of points (..., 3) above the plane."""
        return np.asarray(points) @ self.normal + self.d

    def z_at(self, x: float, y: float) -> float:
        """The plane's height under (x, y) (base frame)."""
        n = self.normal
        return float(-(n[0] * x + n[1] * y + self.d) / n[2])


def _fit_lsq(points: np.ndarray) -> tuple[np.ndarray, float]:
    c = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - c, full_matrices=False)
    n = vt[-1]
    return n, float(-n @ c)


def _orient(n: np.ndarray, on_plane: np.ndarray, up: np.ndarray, max_tilt_deg: float) -> np.ndarray:
    """Flip ``n`` to point along ``up`` (or, when any tilt goes, to the side of the frame's origin)."""
    if max_tilt_deg >= 90.0:
        return n if -n @ on_plane > 0 else -n  # the origin (the camera) is on the positive side
    return n if n @ up >= 0 else -n


def fit_plane(
    points: np.ndarray,
    threshold: float = 0.01,
    iterations: int = 60,
    max_tilt_deg: float = 25.0,
    prior: Plane | None = None,
    rng: np.random.Generator | None = None,
    max_points: int = 4000,
    up: np.ndarray | None = None,
) -> Plane | None:
    """The dominant near-horizontal plane of ``points`` (N, 3), or None when there is none.

    ``max_tilt_deg`` bounds the normal's angle from ``up`` (default +z: a table, not a wall); ``prior`` is
    tried first. ``up`` may be given in another frame (a camera's); with ``max_tilt_deg`` >= 90 any plane
    goes and the normal points to the side of the frame's origin (the camera above the table).
    """
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < 10:
        return None
    rng = rng or np.random.default_rng(0)
    up_v = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    sample = pts if len(pts) <= max_points else pts[rng.choice(len(pts), max_points, replace=False)]
    cos_tilt = np.cos(np.radians(max_tilt_deg)) if max_tilt_deg < 90.0 else -2.0
    best_n, best_d, best_count = None, 0.0, -1
    if prior is not None:
        best_n, best_d = prior.normal, prior.d
        best_count = int(np.count_nonzero(np.abs(sample @ best_n + best_d) < threshold))
    for _ in range(iterations):
        tri = sample[rng.choice(len(sample), 3, replace=False)]
        n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            continue
        n = _orient(n / norm, tri[0], up_v, max_tilt_deg)
        if n @ up_v < cos_tilt:
            continue
        d = -n @ tri[0]
        count = int(np.count_nonzero(np.abs(sample @ n + d) < threshold))
        if count > best_count:
            best_n, best_d, best_count = n, d, count
    if best_n is None or best_count < 10:
        return None
    inliers = sample[np.abs(sample @ best_n + best_d) < threshold]
    n, d = _fit_lsq(inliers)
    n = _orient(n, inliers.mean(axis=0), up_v, max_tilt_deg)
    d = float(-n @ inliers.mean(axis=0))
    if n @ up_v < cos_tilt:
        n, d = best_n, best_d
    frac = float(np.count_nonzero(np.abs(sample @ n + d) < threshold)) / len(sample)
    return Plane(normal=n, d=d, inlier_fraction=frac)
