"""Depth noise like a RealSense D435's, applied to a clean (rendered) depth frame; pure numpy.

Used by the benchmark and the tests to check perception on frames that look like the real camera's:

* range noise: Gaussian with sigma = ``sigma_at_1m`` x z^2 (stereo error grows with the square of the
  range; 1% at 1 m by default), quantised to millimetres as the 16UC1 stream is;
* flying pixels: on depth discontinuities a pixel takes a value between the near and the far surface
  (the stereo matcher's window straddles both);
* holes: the stereo shadow left of near objects (the left imager sees background the right one does not,
  width f x B x (1/z_near - 1/z_far) pixels for baseline B = 50 mm), plus random dropouts and blobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASELINE_M = 0.050  # D435 stereo baseline


@dataclass(frozen=True)
class D435Noise:
    sigma_at_1m: float = 0.01
    flying_prob: float = 0.5  # chance that a discontinuity pixel becomes a flying pixel
    edge_jump_m: float = 0.05  # a discontinuity: neighbours this far apart
    dropout: float = 0.01  # isolated missing pixels
    hole_blobs: int = 4  # random missing blobs per frame
    hole_blob_px: int = 12  # their radius (pixels at 848x480)
    shadow: bool = True
    fx: float = 433.0  # for the shadow width

    def apply(self, depth_m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of ``depth_m`` (float metres, NaN holes), quantised to mm, NaN for new holes."""
        d = np.asarray(depth_m, dtype=np.float64).copy()
        valid = np.isfinite(d) & (d > 0)
        h, w = d.shape
        out = d.copy()
        # Flying pixels on horizontal and vertical discontinuities.
        for axis in (0, 1):
            a = np.take(d, np.arange(d.shape[axis] - 1), axis=axis)
            b = np.take(d, np.arange(1, d.shape[axis]), axis=axis)
            with np.errstate(invalid="ignore"):
                jump = np.abs(a - b) > self.edge_jump_m
            hit = jump & (rng.random(jump.shape) < self.flying_prob)
            t = rng.random(jump.shape)
            mixed = a + t * (b - a)
            out[np.nonzero(hit)] = mixed[hit]  # the first pixel of each pair (same index in a and out)
        # Range noise.
        z = np.where(np.isfinite(out), out, 0.0)
        out = out + rng.standard_normal(out.shape) * self.sigma_at_1m * z * z
        out = np.round(out * 1000.0) / 1000.0
        holes = ~valid | (rng.random((h, w)) < self.dropout)
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(self.hole_blobs):
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            r = rng.integers(self.hole_blob_px // 2, self.hole_blob_px + 1)
            holes |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if self.shadow:
            holes |= self._shadow(d)
        out[holes] = np.nan
        return out.astype(np.float32)

    def _shadow(self, d: np.ndarray) -> np.ndarray:
        """Background pixels just left of a nearer surface (the D435's left-imager shadow)."""
        shadow = np.zeros(d.shape, dtype=bool)
        far, near = d[:, :-1], d[:, 1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            step = (far - near) > self.edge_jump_m
            width = np.where(step, self.fx * BASELINE_M * (1.0 / near - 1.0 / far), 0.0)
        rows, cols = np.nonzero(step)
        for r, c in zip(rows, cols, strict=True):
            n = round(width[r, c])
            if n > 0:
                shadow[r, max(c - n + 1, 0) : c + 1] = True
        return shadow
