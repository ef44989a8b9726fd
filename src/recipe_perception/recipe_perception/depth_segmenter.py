"""The default segmenter: depth only, no weights. Tabletop objects as connected blobs above the table.

Per frame, at 1/``scale`` of the D435's resolution (a 2x2 block mean of the valid pixels, which also
halves the per-pixel noise):

1. back-project every pixel into base_link with the camera's extrinsics;
2. fit the table plane (RANSAC, seeded with the previous frame's plane) among the points inside the
   workspace box, and keep the points at least ``min_height_m`` above it;
3. remove the robot: pixels where the self-filter's render of the robot's collision shapes at the
   current joint states is drawn and the surface is not clearly in front of it
   (recipe_perception.self_filter), so a closing hand does not merge with the object;
4. remove depth discontinuities (pixels whose neighbour is more than ``edge_jump_m`` nearer or farther,
   scaled with range): flying pixels on silhouettes, and the seams between touching surfaces;
5. connected components (8-neighbour) of what is left, blobs of at least ``min_blob_px`` pixels;
6. pick the target: on the first frame after a reset by the prompt (the blob under a pixel, inside a box,
   nearest a 3D point, or nearest the workspace centre for ``auto``); afterwards the blob nearest the
   track's last position within ``gate_m``. No blob there: if the robot or a nearer surface covers the
   last position, the target is *occluded*, otherwise it is *not found*.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recipe_common.cameras import Intrinsics
from recipe_perception.plane import Plane, fit_plane
from recipe_perception.segmenter import Prompt, Segmentation, SegmenterInput
from recipe_perception.self_filter import robot_mask

AUTO_MIN_AREA_FRACTION = 0.2  # the auto prompt ignores blobs under this share of the largest blob's area


@dataclass(frozen=True)
class DepthSegmenterConfig:
    scale: int = 2
    workspace_min: tuple[float, float, float] = (0.12, -0.45, -0.12)  # base_link, metres
    workspace_max: tuple[float, float, float] = (0.85, 0.45, 0.45)
    workspace_centre: tuple[float, float, float] = (0.30, 0.0, 0.0)  # the auto prompt's target
    plane_threshold_m: float = 0.012
    plane_max_tilt_deg: float = 25.0
    min_height_m: float = 0.02
    edge_jump_m: float = 0.03
    robot_margin_m: float = 0.03
    min_blob_px: int = 15
    gate_m: float = 0.08
    merge_margin_m: float = 0.02
    grow_min_height_m: float = 0.004
    grow_steps: int = 6
    max_object_radius_m: float = 0.15
    prompt_radius_px: float = 40.0


@dataclass
class Blob:
    label: int
    area: int
    median: np.ndarray  # (3,) base frame
    points: np.ndarray  # (N, 3) base frame
    bbox: tuple[int, int, int, int]  # x, y, w, h at the processing resolution


def downsample_depth(depth_m: np.ndarray, scale: int) -> np.ndarray:
    """Mean of the valid pixels of each ``scale`` x ``scale`` block (NaN where fewer than half are valid)."""
    if scale == 1:
        return depth_m
    h, w = depth_m.shape[0] // scale, depth_m.shape[1] // scale
    d = depth_m[: h * scale, : w * scale]
    valid = np.isfinite(d)
    filled = np.where(valid, d, 0.0).astype(np.float32)
    s = cv2.resize(filled, (w, h), interpolation=cv2.INTER_AREA)
    c = cv2.resize(valid.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / c
    out[c < 0.5] = np.nan
    return out


def depth_edges(d: np.ndarray, jump_m: float) -> np.ndarray:
    """The far side of every depth discontinuity: pixels with a 4-neighbour nearer by > jump_m x max(1, z).

    Only the far pixel of each pair is marked, so an object keeps its silhouette (its lateral extent is
    what the centre estimate measures) while the background rim and flying pixels, which are farther than
    the object they border, are cut away and the object separates from what is behind it.
    """
    edge = np.zeros(d.shape, dtype=bool)
    thr = jump_m * np.maximum(np.nan_to_num(d, nan=1.0), 1.0)
    with np.errstate(invalid="ignore"):
        for axis in (0, 1):
            a = d[:-1, :] if axis == 0 else d[:, :-1]
            b = d[1:, :] if axis == 0 else d[:, 1:]
            t = thr[:-1, :] if axis == 0 else thr[:, :-1]
            a_far = a - b > t  # the first of the pair is farther
            b_far = b - a > t
            if axis == 0:
                edge[:-1, :] |= a_far
                edge[1:, :] |= b_far
            else:
                edge[:, :-1] |= a_far
                edge[:, 1:] |= b_far
    return edge


class RayCache:
    """Unit-depth rays (H, W, 3) of an intrinsics, kept until the intrinsics change."""

    def __init__(self) -> None:
        self._k: Intrinsics | None = None
        self._rays: np.ndarray | None = None

    def rays(self, k: Intrinsics) -> np.ndarray:
        if self._k != k or self._rays is None:
            u = (np.arange(k.width, dtype=np.float32) - k.cx) / k.fx
            v = (np.arange(k.height, dtype=np.float32) - k.cy) / k.fy
            uu, vv = np.meshgrid(u, v)
            self._rays = np.stack([uu, vv, np.ones_like(uu)], axis=-1).astype(np.float32)
            self._k = k
        return self._rays


def resize_nearest(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if img.shape[:2] == shape:
        return img
    return cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


class DepthSegmenter:
    """Table-plane + self-filter + connected-components segmentation with frame-to-frame association."""

    name = "depth"
    needs_color = False

    def __init__(self, config: DepthSegmenterConfig | None = None, seed: int = 0) -> None:
        self.cfg = config or DepthSegmenterConfig()
        if self.cfg.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.cfg.scale}")
        self._rays = RayCache()
        self._rng = np.random.default_rng(seed)
        self.plane: Plane | None = None
        self.prompt = Prompt("auto")
        self._last: np.ndarray | None = None  # the target's median surface point (base frame)
        self._radius: float | None = None  # the target's size: 90th percentile distance from that median
        # What the last frame looked like, for the debug image and tests.
        self.last_blobs: list[Blob] = []
        self.last_robot: np.ndarray | None = None
        self.last_labels: np.ndarray | None = None

    def reset(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self._last = None
        self._radius = None

    def shift(self, delta: np.ndarray) -> None:
        if self._last is not None:
            self._last = self._last + np.asarray(delta, dtype=np.float64)

    @property
    def initialised(self) -> bool:
        return self._last is not None

    # ---------------------------------------------------------------------------------------------
    def segment(self, frame: SegmenterInput) -> Segmentation:
        cfg = self.cfg
        s = cfg.scale
        d = downsample_depth(frame.depth_m, s)
        h, w = d.shape
        k = frame.intrinsics.scaled(w, h) if s > 1 else frame.intrinsics
        ext = frame.extrinsics
        pts = (self._rays.rays(k) * d[..., None]) @ ext.rotation.T.astype(np.float32) + ext.position.astype(
            np.float32
        )
        valid = np.isfinite(d)
        lo, hi = np.asarray(cfg.workspace_min), np.asarray(cfg.workspace_max)
        with np.errstate(invalid="ignore"):
            inside = valid & np.all((pts >= lo) & (pts <= hi), axis=-1)
        plane = fit_plane(
            pts[inside],
            threshold=cfg.plane_threshold_m,
            max_tilt_deg=cfg.plane_max_tilt_deg,
            prior=self.plane,
            rng=self._rng,
        )
        if plane is None:
            return Segmentation(
                None, reason="no table plane in the workspace box (camera pose or workspace wrong?)"
            )
        self.plane = plane
        with np.errstate(invalid="ignore"):
            above = inside & (plane.height(pts) > cfg.min_height_m)
        robot = np.zeros_like(above)
        if frame.robot_depth is not None:
            rd = frame.robot_depth
            if rd.shape != d.shape:
                rd = resize_nearest(rd, d.shape)
            robot = robot_mask(d, rd, cfg.robot_margin_m)
        self.last_robot = robot
        free = inside & ~robot & ~depth_edges(d, cfg.edge_jump_m)
        cand = above & free
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
        self.last_labels = labels
        blobs: list[Blob] = []
        for i in range(1, n):
            area = int(stats[i, cv2.CC_STAT_AREA])
            if area < cfg.min_blob_px:
                continue
            x, y, bw, bh = (int(v) for v in stats[i, :4])
            sub = labels[y : y + bh, x : x + bw] == i
            p = pts[y : y + bh, x : x + bw][sub].astype(np.float64)
            blobs.append(Blob(i, area, np.median(p, axis=0), p, (x, y, bw, bh)))
        self.last_blobs = blobs
        prev = self._last
        target = self._select(blobs)
        if target is None:
            return self._missing(d, robot, k, frame)
        members = [target]
        if prev is not None and self._radius is not None:
            # A hand across the object splits it into pieces: every blob within the object's size of its
            # last position is part of it (the robot's own pixels are already gone).
            reach = self._radius + cfg.merge_margin_m
            members += [
                b for b in blobs if b is not target and float(np.linalg.norm(b.median - prev)) <= reach
            ]
        points = np.concatenate([b.points for b in members])
        median = np.median(points, axis=0)
        if len(members) == 1:
            radius = float(np.percentile(np.linalg.norm(points - median, axis=1), 90))
            self._radius = min(max(self._radius or 0.0, radius), cfg.max_object_radius_m)
        self._last = median
        low = np.zeros((h, w), dtype=bool)
        for b in members:
            x, y, bw, bh = b.bbox
            low[y : y + bh, x : x + bw] |= labels[y : y + bh, x : x + bw] == b.label
        # The height threshold cuts the object's lowest centimetres off; the published mask grows back
        # into them (pixels touching it, just above the table). The centre uses the blob's own points.
        with np.errstate(invalid="ignore"):
            low_band = free & (plane.height(pts) > cfg.grow_min_height_m)
        kernel = np.ones((3, 3), np.uint8)
        for _ in range(cfg.grow_steps):
            low = low | (cv2.dilate(low.astype(np.uint8), kernel).astype(bool) & low_band)
        mask = self._upsample(low, frame.depth_m.shape)
        # A clean association (the blob moved little since the last frame) scores 1, one at the gate 0.5.
        score = (
            1.0 if prev is None else 1.0 - 0.5 * min(float(np.linalg.norm(median - prev)) / cfg.gate_m, 1.0)
        )
        return Segmentation(mask, score=score, points=points)

    # ---------------------------------------------------------------------------------------------
    def _select(self, blobs: list[Blob]) -> Blob | None:
        if not blobs:
            return None
        cfg = self.cfg
        if self._last is not None:
            dist = [float(np.linalg.norm(b.median - self._last)) for b in blobs]
            i = int(np.argmin(dist))
            return blobs[i] if dist[i] <= cfg.gate_m else None
        s = cfg.scale
        p = self.prompt
        if p.kind == "auto":
            # Fingertip fragments the self-filter leaves of the hands at the ready pose can sit nearer the
            # workspace centre than the object's visible face (a box_lift box shows the face away from the
            # robot, 10 cm behind its centre): only blobs of a real share of the largest one compete.
            floor = AUTO_MIN_AREA_FRACTION * max(b.area for b in blobs)
            c = np.asarray(cfg.workspace_centre)
            dist = [float(np.linalg.norm((b.median - c)[:2])) if b.area >= floor else np.inf for b in blobs]
            return blobs[int(np.argmin(dist))]
        if p.kind == "point":
            c = np.asarray(p.values)
            dist = [float(np.linalg.norm(b.median - c)) for b in blobs]
            i = int(np.argmin(dist))
            return blobs[i] if dist[i] <= 2 * cfg.gate_m else None
        labels = self.last_labels
        assert labels is not None
        by_label = {b.label: b for b in blobs}
        if p.kind == "pixel":
            u, v = (p.values[0] + 0.5) / s - 0.5, (p.values[1] + 0.5) / s - 0.5
            ui, vi = round(u), round(v)
            if 0 <= vi < labels.shape[0] and 0 <= ui < labels.shape[1] and labels[vi, ui] in by_label:
                return by_label[int(labels[vi, ui])]
            best, best_d = None, cfg.prompt_radius_px / s
            for b in blobs:
                x, y, bw, bh = b.bbox
                ys, xs = np.nonzero(labels[y : y + bh, x : x + bw] == b.label)
                dd = float(np.min(np.hypot(xs + x - u, ys + y - v)))
                if dd <= best_d:
                    best, best_d = b, dd
            return best
        # box
        u0, v0, u1, v1 = (
            int(np.floor(p.values[0] / s)),
            int(np.floor(p.values[1] / s)),
            int(np.ceil(p.values[2] / s)),
            int(np.ceil(p.values[3] / s)),
        )
        window = labels[max(v0, 0) : max(v1, 0), max(u0, 0) : max(u1, 0)]
        best, best_frac = None, 0.3
        for b in blobs:
            frac = float(np.count_nonzero(window == b.label)) / b.area
            if frac > best_frac:
                best, best_frac = b, frac
        return best

    def _missing(
        self, d: np.ndarray, robot: np.ndarray, k: Intrinsics, frame: SegmenterInput
    ) -> Segmentation:
        if self._last is None:
            return Segmentation(None, reason=f"no object matches the prompt {self.prompt}")
        pc = frame.extrinsics.from_parent(self._last)
        if pc[2] <= 0:
            return Segmentation(None, reason="the target's last position is behind the camera")
        u, v = k.fx * pc[0] / pc[2] + k.cx, k.fy * pc[1] / pc[2] + k.cy
        ui, vi = round(u), round(v)
        r = 2
        if not (0 <= vi < d.shape[0] and 0 <= ui < d.shape[1]):
            return Segmentation(None, reason="the target left the camera's view")
        win = (slice(max(vi - r, 0), vi + r + 1), slice(max(ui - r, 0), ui + r + 1))
        if np.any(robot[win]):
            return Segmentation(None, occluded=True, reason="target hidden behind the robot")
        with np.errstate(invalid="ignore"):
            nearer = d[win] < pc[2] - 0.04
        if np.any(nearer):
            return Segmentation(None, occluded=True, reason="target hidden behind a nearer surface")
        if not np.any(np.isfinite(d[win])):
            return Segmentation(None, occluded=True, reason="no depth where the target was")
        return Segmentation(
            None, reason=f"no blob within {self.cfg.gate_m:.2f} m of the target's last position"
        )

    def _upsample(self, low: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        s = self.cfg.scale
        if s == 1:
            return low
        up = np.zeros(shape, dtype=bool)
        rep = np.repeat(np.repeat(low, s, axis=0), s, axis=1)
        up[: rep.shape[0], : rep.shape[1]] = rep
        return up
