"""Following an object that a closed hand holds, while the hand hides it from the camera; pure numpy.

From the third-view tripod, a side grasp covers most of the object (the fingers wrap the side that faces
the camera), and a small object (a puck) disappears behind the hand completely. What the robot does
know is where its hand is (joint states + the model, see self_filter.RobotSelfFilter.hand_poses) and,
from the frames before, where the object sat relative to the palm. So:

* ``observe``: with a visual estimate of the centre and a palm within ``attach_dist_m`` of it, the
  object is in that hand's reach: remember its centre in the palm frame (blended with ``gain``, so an
  estimate from a few visible points corrects the offset only partly). No palm near ends it. The hand
  may still be opening or closing here: the object usually vanishes while the fingers close around it;
* ``predict``: once that hand is closed (mean finger closure >= ``min_closure``), the held object's
  centre from the palm's current pose and the remembered offset; None while the hand is open (an open
  hand carries nothing: the object stays where it was last seen).

The pipeline uses the prediction as the starting point of the partial-view registration (vision then
corrects what it can see) and, when nothing of the object is visible, publishes it with status
OCCLUDED: it is an inference from the robot's own kinematics, never labelled TRACKING.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HandPose:
    side: str  # "left" | "right"
    position: np.ndarray  # (3,) palm centre, base frame
    rotation: np.ndarray  # (3, 3) palm frame axes in the base frame
    closure: float  # mean normalized closure of the four fingers, 0 open .. 1 closed


class HandAttachment:
    def __init__(self, attach_dist_m: float = 0.10, min_closure: float = 0.3) -> None:
        self.attach_dist_m = attach_dist_m
        self.min_closure = min_closure
        self.reset()

    def reset(self) -> None:
        self.side: str | None = None
        self.offset: np.ndarray | None = None  # object centre in the palm frame

    @property
    def attached(self) -> bool:
        return self.side is not None

    def _nearest(self, centre: np.ndarray, hands: list[HandPose]) -> HandPose | None:
        best, best_d = None, self.attach_dist_m
        for h in hands:
            d = float(np.linalg.norm(centre - h.position))
            if d <= best_d:
                best, best_d = h, d
        return best

    def observe(self, centre: np.ndarray, hands: list[HandPose], gain: float = 1.0) -> None:
        """A visual estimate of the centre (base frame) at the hands' current poses."""
        c = np.asarray(centre, dtype=np.float64)
        h = self._nearest(c, hands)
        if h is None:
            self.reset()
            return
        off = h.rotation.T @ (c - h.position)
        if self.side == h.side and self.offset is not None:
            self.offset = self.offset + gain * (off - self.offset)
        else:
            self.side, self.offset = h.side, off

    def predict(self, hands: list[HandPose]) -> np.ndarray | None:
        if self.side is None or self.offset is None:
            return None
        for h in hands:
            if h.side == self.side:
                if h.closure < self.min_closure:
                    return None  # an open hand carries nothing
                return h.position + h.rotation @ self.offset
        return None
