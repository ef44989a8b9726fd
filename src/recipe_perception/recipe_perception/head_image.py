"""The head camera's outputs: the policy's dense depth input, and the same image with the table removed.

``policy_image`` is recipe_common.policy_image.to_policy_image of the head frame: the 84x84 metres image
the sim renders and the policy is trained on (one function for both, see that module).

``segmented`` is the paper's "segmented depth" variant (its ablation): the policy image with everything
that is not above the table (the table top, the floor, whatever is beyond) set to the far value, so only
the hands and the objects remain. The table plane is fitted in the head camera's own frame (RANSAC on the
84x84 image's points), so no head extrinsics are needed.
"""

from __future__ import annotations

import numpy as np

from recipe_common.cameras import Intrinsics
from recipe_common.policy_image import PolicyImageSpec, to_policy_image
from recipe_perception.plane import Plane, fit_plane


class HeadDepth:
    def __init__(
        self, spec: PolicyImageSpec, min_height_m: float = 0.02, plane_threshold_m: float = 0.012
    ) -> None:
        self.spec = spec
        self.min_height_m = min_height_m
        self.plane_threshold_m = plane_threshold_m
        k = spec.intrinsics()
        u = (np.arange(k.width) - k.cx) / k.fx
        v = (np.arange(k.height) - k.cy) / k.fy
        uu, vv = np.meshgrid(u, v)
        self._rays = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
        self.plane: Plane | None = None
        self._rng = np.random.default_rng(0)

    def policy_image(self, depth: np.ndarray, k: Intrinsics) -> np.ndarray:
        return to_policy_image(depth, k, self.spec)

    def segmented(self, policy_img: np.ndarray) -> np.ndarray:
        """``policy_img`` with the table plane and everything beyond it at ``spec.far_m``."""
        pts = self._rays * policy_img[..., None].astype(np.float64)
        near = policy_img < self.spec.far_m - 1e-6
        plane = fit_plane(
            pts[near], threshold=self.plane_threshold_m, prior=self.plane, rng=self._rng, max_tilt_deg=90.0
        )
        out = np.full_like(policy_img, self.spec.far_m)
        if plane is None:
            return out
        self.plane = plane
        keep = near & (plane.height(pts) > self.min_height_m)
        out[keep] = policy_img[keep]
        return out
