"""Primitive collision shapes fitted to link meshes.

Mesh-mesh finger contacts are the main physics cost (about 2x slower stepping, ~3x more contacts than
capsules), and the Inspire URDF has no hand collision shapes at all. A capsule along a finger link's
principal axis, and an oriented box for the palm, are fast and close enough for grasping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A capsule's radius is this percentile of the vertices' distance from the axis: the max would let
# a few outlying vertices (screw bosses, cable guides) inflate the whole finger.
RADIUS_PERCENTILE = 90.0


@dataclass(frozen=True)
class CapsuleFit:
    """Capsule in the mesh's frame: segment ``center +- axis * half_length``, radius ``radius``."""

    center: np.ndarray  # (3,)
    axis: np.ndarray  # (3,) unit vector
    radius: float
    half_length: float

    def endpoints(self) -> tuple[np.ndarray, np.ndarray]:
        return self.center - self.axis * self.half_length, self.center + self.axis * self.half_length

    def far_tip(self, origin: np.ndarray) -> np.ndarray:
        """The capsule's surface point along its axis farthest from ``origin`` (the joint): the fingertip."""
        a, b = self.endpoints()
        direction = self.axis if np.linalg.norm(b - origin) >= np.linalg.norm(a - origin) else -self.axis
        return self.center + direction * (self.half_length + self.radius)


@dataclass(frozen=True)
class BoxFit:
    """Oriented box in the mesh's frame: columns of ``rotation`` are the box axes."""

    center: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3), proper rotation
    half_extents: np.ndarray  # (3,)


def _check_vertices(vertices: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 4:
        raise ValueError(f"expected at least 4 vertices of shape (N, 3), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices contain NaN or inf")
    # STL repeats each vertex once per triangle; weight each point once. (Row-wise np.unique via a
    # byte view: np.unique(axis=0) is ~20x slower.)
    v = np.ascontiguousarray(v)
    rows = v.view(np.dtype((np.void, v.dtype.itemsize * 3))).ravel()
    _, first = np.unique(rows, return_index=True)
    return v[np.sort(first)]


def _principal_axes(v: np.ndarray) -> np.ndarray:
    centred = v - v.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    rot = vt.T
    if np.linalg.det(rot) < 0:
        rot[:, 2] = -rot[:, 2]
    return rot


def fit_capsule(vertices: np.ndarray) -> CapsuleFit:
    """Capsule along the main principal axis whose caps reach the mesh's extreme points on that axis."""
    v = _check_vertices(vertices)
    rot = _principal_axes(v)
    local = v @ rot  # coordinates in the principal frame
    lo, hi = local.min(axis=0), local.max(axis=0)
    mid = 0.5 * (lo + hi)
    radial = np.linalg.norm(local[:, 1:] - mid[1:], axis=1)
    radius = float(np.percentile(radial, RADIUS_PERCENTILE))
    length = float(hi[0] - lo[0])
    radius = min(radius, 0.5 * length)  # a capsule cannot be shorter than its two caps
    half_length = max(0.5 * length - radius, 1e-4)
    return CapsuleFit(center=rot @ mid, axis=rot[:, 0].copy(), radius=radius, half_length=half_length)


def fit_box(vertices: np.ndarray) -> BoxFit:
    """Tight box aligned with the mesh's principal axes."""
    v = _check_vertices(vertices)
    rot = _principal_axes(v)
    local = v @ rot
    lo, hi = local.min(axis=0), local.max(axis=0)
    return BoxFit(center=rot @ (0.5 * (lo + hi)), rotation=rot, half_extents=0.5 * (hi - lo))


def transform_points(points: np.ndarray, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """Apply the rigid transform (pos, quat wxyz) to (N, 3) points."""
    return points @ quat_to_mat(quat).T + np.asarray(pos, dtype=np.float64)


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def mat_to_quat(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z) with w >= 0."""
    m = np.asarray(rot, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q
