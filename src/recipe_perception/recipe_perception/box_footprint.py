"""The depth of a box along the camera's view, from the faces the camera sees and the box's known footprint.

The tripod camera looks at the table almost horizontally (about 7 degrees down onto a box top 13 cm under
the lens), so a box shows its side faces and a sliver of its top: its extent along the view is not
observable. For a round or square footprint it equals the visible width, which is what
``lifting.CentreEstimator`` assumes; box_lift's boxes are 20 cm deep and 24-34 cm wide and stand at any yaw,
so that assumption put their centres 2-6 cm off. Given the footprint's half-extents (known to whoever
places the box: config ``object_footprint_m``), the yaw follows from the side faces: the rectangle whose
camera-facing edges fit the visible points best. Pure numpy; no ROS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRUNCATE_M = 0.02  # distances to the boundary count up to this in the score


@dataclass(frozen=True)
class FootprintFit:
    yaw: float  # rad, the box's x axis from the lateral axis towards the view axis
    half_depth: float  # m, the box's half-extent along the view at that yaw
    half_width: float  # m, its half-extent across the view
    residual: float  # m, mean distance of the points to the fitted rectangle's boundary (truncated)
    centre: tuple[float, float]  # (lateral, along) of the fitted rectangle


def box_extents(half_x: float, half_y: float, yaw: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Half-extents (across the view, along the view) of a half_x x half_y rectangle at ``yaw``."""
    c, s = np.abs(np.cos(yaw)), np.abs(np.sin(yaw))
    return half_x * c + half_y * s, half_x * s + half_y * c


def fit_box_footprint(
    lateral: np.ndarray,
    along: np.ndarray,
    half_x: float,
    half_y: float,
    coarse_step_deg: float = 6.0,
    fine_step_deg: float = 1.0,
    iterations: int = 4,
    max_points: int = 256,
) -> FootprintFit | None:
    """The rectangle (half_x, half_y) at the yaw that best fits points seen on a box's side faces.

    ``lateral`` / ``along``: the points' coordinates across and along the horizontal viewing direction
    (the camera looks towards +along). For each yaw of a grid over [0, 180) degrees (coarse, then fine
    around the best) the rectangle starts at the visible lateral middle with its nearest corner on the
    front-most points, is moved by a few point-to-boundary ICP steps (translation only), and is scored by
    the points' truncated mean distance to its boundary. At most ``max_points`` evenly spaced points are used
    (a frame gives thousands; 256 fit as well at a twentieth of the cost: a few ms). None with fewer than 8.
    """
    pts = np.column_stack([np.asarray(lateral, dtype=np.float64), np.asarray(along, dtype=np.float64)])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < 8:
        return None
    if len(pts) > max_points:
        pts = pts[np.linspace(0, len(pts) - 1, max_points).astype(int)]
    lo_l, hi_l = np.percentile(pts[:, 0], [2.0, 98.0])
    start = (0.5 * (lo_l + hi_l), float(np.percentile(pts[:, 1], 2.0)))
    coarse = np.radians(np.arange(0.0, 180.0, coarse_step_deg))
    yaws, centres, score = _fit_yaws(pts, coarse, start, half_x, half_y, iterations)
    around = yaws[int(np.argmin(score))] + np.radians(
        np.arange(-coarse_step_deg, coarse_step_deg + 0.5 * fine_step_deg, fine_step_deg))
    yaws, centres, score = _fit_yaws(pts, np.mod(around, np.pi), start, half_x, half_y, iterations)
    best = int(np.argmin(score))
    half_w, half_d = box_extents(half_x, half_y, yaws[best])
    centre = (float(centres[best, 0]), float(centres[best, 1]))
    return FootprintFit(float(yaws[best]), float(half_d), float(half_w), float(score[best]), centre)


def _fit_yaws(
    pts: np.ndarray,
    yaws: np.ndarray,
    start: tuple[float, float],
    half_x: float,
    half_y: float,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each yaw's rectangle after the ICP steps, and its score: (yaws, centres (Y, 2), scores).

    The score is the mean distance to the boundary truncated at ``TRUNCATE_M``: a median would not see a
    face that overhangs a wrong, shorter edge (a third of the points off by up to 6 cm), and the truncation
    keeps stray points (a fingertip, flying pixels) from deciding.
    """
    _, half_h = box_extents(half_x, half_y, yaws)
    centres = np.column_stack([np.full(len(yaws), start[0]), start[1] + half_h])  # (Y, 2)
    cos, sin = np.cos(yaws), np.sin(yaws)
    for _ in range(iterations):
        residual = _boundary_residual(pts, centres, cos, sin, half_x, half_y)  # (Y, N, 2) in the box frame
        dist = np.linalg.norm(residual, axis=2)
        keep = dist <= np.maximum(3.0 * np.median(dist, axis=1, keepdims=True), 0.01)
        mean_r = (residual * keep[..., None]).sum(axis=1) / np.maximum(keep.sum(axis=1), 1)[:, None]
        # box-frame residual -> view frame; the points lie off the boundary by r, so the box moves by +r
        centres = centres + np.column_stack([cos * mean_r[:, 0] - sin * mean_r[:, 1],
                                             sin * mean_r[:, 0] + cos * mean_r[:, 1]])
    dist = np.linalg.norm(_boundary_residual(pts, centres, cos, sin, half_x, half_y), axis=2)
    return yaws, centres, np.minimum(dist, TRUNCATE_M).mean(axis=1)


def _boundary_residual(
    pts: np.ndarray, centres: np.ndarray, cos: np.ndarray, sin: np.ndarray, half_x: float, half_y: float
) -> np.ndarray:
    """Point minus its nearest point on each rectangle's boundary, in each rectangle's frame: (Y, N, 2)."""
    d = pts[None, :, :] - centres[:, None, :]
    qx = d[..., 0] * cos[:, None] + d[..., 1] * sin[:, None]
    qy = -d[..., 0] * sin[:, None] + d[..., 1] * cos[:, None]
    bx, by = np.clip(qx, -half_x, half_x), np.clip(qy, -half_y, half_y)
    inside = (np.abs(qx) <= half_x) & (np.abs(qy) <= half_y)
    # inside: the nearest edge (x edges when closer in x than in y)
    to_x, to_y = half_x - np.abs(qx), half_y - np.abs(qy)
    snap_x = inside & (to_x <= to_y)
    snap_y = inside & ~snap_x
    bx = np.where(snap_x, np.sign(qx) * half_x, bx)
    by = np.where(snap_y, np.sign(qy) * half_y, by)
    return np.stack([qx - bx, qy - by], axis=-1)
