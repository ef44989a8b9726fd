"""One function from a depth camera frame to the policy's depth input, for the twin and the real D435 alike.

The policy sees the head camera as a small square depth image (84x84 by default) with the head stream's
vertical field of view (config/scene.yaml, ``cameras.head_depth.policy_image``). The twin renders that
image directly; the real D435 gives 848x480 16UC1 millimetres with holes. ``to_policy_image`` turns either
into the same thing:

1. units: uint16 millimetres (realsense2_camera's 16UC1) or float metres; 0, NaN, inf and negative
   readings are holes;
2. crop: the centred window of the frame that spans the policy image's field of view (for the D435 at
   848x480 and a square image with the stream's vertical FOV, the central 480x480);
3. resize: each policy pixel is the mean of the valid frame pixels inside its footprint (the area a
   rendered pixel covers), so holes do not bias it and a frame at any resolution gives the same image;
4. hole filling: a policy pixel with no valid reading takes the nearest valid neighbour's value
   (a few 3x3 passes), and what is left is ``far_m``;
5. clipping to ``[near_m, far_m]`` metres, float32.

The same call on the twin's own 84x84 render (its intrinsics are the policy image's: the crop and the
resize are identities) gives the image the sim trains on; a test compares the two paths on one scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recipe_common.cameras import HEAD, CameraConfig, Intrinsics, camera_table

MM_PER_M = 1000.0
FILL_PASSES = 4


@dataclass(frozen=True)
class PolicyImageSpec:
    width: int
    height: int
    fovy_deg: float
    near_m: float = 0.1  # the D435 reads nothing nearer than about 0.1-0.3 m
    far_m: float = 2.0  # beyond the table: everything farther is "background"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"policy image size must be positive, got {self.width}x{self.height}")
        if not 0.0 < self.fovy_deg < 180.0:
            raise ValueError(f"fovy_deg must be in (0, 180), got {self.fovy_deg}")
        if not 0.0 <= self.near_m < self.far_m:
            raise ValueError(f"need 0 <= near_m < far_m, got {self.near_m}, {self.far_m}")

    @classmethod
    def for_camera(cls, cam: CameraConfig | None = None, **kw: float) -> PolicyImageSpec:
        """The policy image of a table camera (default: the head camera) with its stream's vertical FOV."""
        cam = cam or camera_table()[HEAD]
        if cam.policy_image is None:
            raise ValueError(f"camera {cam.name!r} has no policy_image in config/scene.yaml")
        w, h = cam.policy_image
        return cls(width=w, height=h, fovy_deg=cam.fovy_deg, **kw)

    def intrinsics(self) -> Intrinsics:
        """What a camera rendering the policy image directly has (the twin's)."""
        return Intrinsics.from_fovy(self.fovy_deg, self.width, self.height)


def depth_in_metres(depth: np.ndarray) -> np.ndarray:
    """float32 metres with NaN for holes, from uint16 millimetres or float metres."""
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"depth image must be 2-D (H, W), got shape {d.shape}")
    if d.dtype == np.uint16:
        out = d.astype(np.float32) / np.float32(MM_PER_M)
    elif np.issubdtype(d.dtype, np.floating):
        out = d.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth must be uint16 millimetres or float metres, got dtype {d.dtype}")
    with np.errstate(invalid="ignore"):
        out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def crop_window(k: Intrinsics, spec: PolicyImageSpec) -> tuple[float, float, float, float]:
    """(u0, v0, u1, v1) in pixel-edge coordinates of the frame region that the policy image spans."""
    half_h = k.fy * math.tan(math.radians(spec.fovy_deg) / 2.0)  # pixels from the centre to the edge
    spec_k = spec.intrinsics()
    half_w = k.fx * (0.5 * spec.width / spec_k.fx)
    cu, cv = k.cx + 0.5, k.cy + 0.5  # principal point in edge coordinates
    u0, u1, v0, v1 = cu - half_w, cu + half_w, cv - half_h, cv + half_h
    if u0 < -0.5 or v0 < -0.5 or u1 > k.width + 0.5 or v1 > k.height + 0.5:
        raise ValueError(f"the {k.width}x{k.height} frame (fovy {k.fovy_deg:.1f} deg) does not cover the "
                         f"policy image's field of view ({spec.fovy_deg:.1f} deg vertical)")
    return u0, v0, u1, v1


def _bins(lo: float, hi: float, n_out: int, n_in: int) -> np.ndarray:
    """Integer edges (n_out + 1) splitting source pixels [lo, hi) into n_out footprints."""
    edges = np.rint(np.linspace(lo, hi, n_out + 1)).astype(int)
    return np.clip(edges, 0, n_in)


def _area_mean(d: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mean of the finite entries of ``d`` inside each (row bin, col bin) footprint; NaN where none."""
    valid = np.isfinite(d)
    vals = np.where(valid, d, 0.0).astype(np.float64)
    s = np.zeros((d.shape[0] + 1, d.shape[1] + 1))
    c = np.zeros_like(s)
    s[1:, 1:] = vals.cumsum(0).cumsum(1)
    c[1:, 1:] = valid.cumsum(0).cumsum(1)

    def box(t: np.ndarray) -> np.ndarray:
        r0, r1 = rows[:-1, None], rows[1:, None]
        c0, c1 = cols[None, :-1], cols[None, 1:]
        return t[r1, c1] - t[r0, c1] - t[r1, c0] + t[r0, c0]

    total, count = box(s), box(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def fill_holes(img: np.ndarray, passes: int = FILL_PASSES) -> np.ndarray:
    """NaN pixels take the mean of their valid 3x3 neighbours, repeated ``passes`` times."""
    out = img.copy()
    for _ in range(passes):
        holes = ~np.isfinite(out)
        if not holes.any():
            break
        padded = np.pad(out, 1, constant_values=np.nan)
        stack = np.stack([padded[i:i + out.shape[0], j:j + out.shape[1]] for i in range(3) for j in range(3)])
        valid = np.isfinite(stack)
        count = valid.sum(0)
        mean = np.where(valid, stack, 0.0).sum(0) / np.maximum(count, 1)
        out = np.where(holes & (count > 0), mean, out)
    return out


def to_policy_image(depth: np.ndarray, k: Intrinsics, spec: PolicyImageSpec) -> np.ndarray:
    """(spec.height, spec.width) float32 metres in [near_m, far_m] from a depth frame with intrinsics k."""
    if (depth.shape[1], depth.shape[0]) != (k.width, k.height):
        raise ValueError(f"depth is {depth.shape[1]}x{depth.shape[0]} but its camera_info says "
                         f"{k.width}x{k.height}")
    d = depth_in_metres(depth)
    u0, v0, u1, v1 = crop_window(k, spec)
    rows = _bins(v0, v1, spec.height, k.height)
    cols = _bins(u0, u1, spec.width, k.width)
    img = fill_holes(_area_mean(d, rows, cols))
    img = np.where(np.isfinite(img), img, spec.far_m)
    return np.clip(img, spec.near_m, spec.far_m).astype(np.float32)
