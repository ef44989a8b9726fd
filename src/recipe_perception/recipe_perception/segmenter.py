"""The one interface every object segmenter/tracker implements, and the prompt that picks the target.

A segmenter gets each third-view frame (depth in metres, optionally colour aligned to it, the robot's
own rendered depth for the self-filter) and returns the target's mask in that frame, or says why there
is none. Which one runs is chosen in config/perception.yaml (``segmenter: depth | sam2``):

* ``depth`` (recipe_perception.depth_segmenter): no weights; table plane, robot self-filter, connected
  components, frame-to-frame association. The default.
* ``sam2`` (recipe_perception.sam2_segmenter): SAM2's camera predictor on the colour stream, prompted on
  the first frame as the paper does; needs a checkpoint and the ``sam2`` package.

Prompts (``target_prompt`` parameter; pixels are in the third-view depth image):
``auto`` (the blob nearest the workspace centre), ``pixel:U,V``, ``box:U0,V0,U1,V1``, ``point:X,Y,Z``
(metres in base_link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recipe_common.cameras import Intrinsics
from recipe_perception.extrinsics import CameraExtrinsics

PROMPT_KINDS = ("auto", "pixel", "box", "point")


@dataclass(frozen=True)
class Prompt:
    kind: str  # one of PROMPT_KINDS
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = {"auto": 0, "pixel": 2, "box": 4, "point": 3}.get(self.kind)
        if n is None:
            raise ValueError(f"prompt kind {self.kind!r} is not one of {list(PROMPT_KINDS)}")
        if len(self.values) != n or not all(np.isfinite(self.values)):
            raise ValueError(f"a {self.kind} prompt needs {n} finite numbers, got {list(self.values)}")
        if self.kind == "box" and (self.values[0] >= self.values[2] or self.values[1] >= self.values[3]):
            raise ValueError(f"a box prompt is U0,V0,U1,V1 with U0 < U1 and V0 < V1, got {list(self.values)}")

    @classmethod
    def parse(cls, text: str) -> Prompt:
        """``auto`` | ``pixel:U,V`` | ``box:U0,V0,U1,V1`` | ``point:X,Y,Z``."""
        text = text.strip()
        if text == "auto":
            return cls("auto")
        kind, sep, rest = text.partition(":")
        if not sep:
            raise ValueError(
                f"target prompt {text!r}: expected auto, pixel:U,V, box:U0,V0,U1,V1 or point:X,Y,Z"
            )
        try:
            values = tuple(float(v) for v in rest.split(","))
        except ValueError:
            raise ValueError(f"target prompt {text!r}: the values must be numbers") from None
        return cls(kind.strip(), values)

    def __str__(self) -> str:
        return self.kind if self.kind == "auto" else f"{self.kind}:" + ",".join(f"{v:g}" for v in self.values)


@dataclass
class SegmenterInput:
    """One third-view frame, everything in the depth image's pixels."""

    depth_m: np.ndarray  # (H, W) float32 metres, NaN holes
    intrinsics: Intrinsics
    extrinsics: CameraExtrinsics  # optical frame in base_link
    stamp: float  # seconds
    color: np.ndarray | None = None  # (H, W, 3) uint8 RGB aligned with the depth, when available
    robot_depth: np.ndarray | None = None  # self-filter render at robot_depth_scale, inf = no robot
    robot_depth_scale: int = 1  # the render's pixel = this many depth pixels per side


@dataclass
class Segmentation:
    """The target in one frame: a mask, or the reason there is none and whether it is hidden."""

    mask: np.ndarray | None  # (H, W) bool at the depth resolution; None when not found
    occluded: bool = False  # not found, but something (robot, another surface) covers where it was
    reason: str = ""  # why there is no mask, for the log and the status
    score: float = 0.0  # 0..1 how sure the segmenter is this is the target
    points: np.ndarray | None = None  # (N, 3) base-frame surface points of the target, if computed


class Segmenter(Protocol):
    """What the perception pipeline calls; implementations keep their own tracking state."""

    name: str
    needs_color: bool

    def reset(self, prompt: Prompt) -> None:
        """Forget the target and take a new prompt: the next frames initialise the track."""

    def segment(self, frame: SegmenterInput) -> Segmentation:
        """The target's mask in this frame (tracking it from the previous ones)."""

    def shift(self, delta: np.ndarray) -> None:
        """The target is expected to have moved by ``delta`` (base frame, m) since the last frame: the robot
        is carrying it (hand_attachment). Segmenters that associate by position move their reference."""
