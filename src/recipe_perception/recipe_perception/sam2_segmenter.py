"""SAM2 as a ``Segmenter``: the camera predictor prompted on the first frame, then tracking (the paper's way).

Built against the streaming API of SAM2's camera predictor (the segment-anything-2-real-time fork):
``build_sam2_camera_predictor(config, checkpoint, device)``, ``load_first_frame(rgb)``,
``add_new_prompt(frame_idx=0, obj_id=1, points=..., labels=... | bbox=...)`` (older releases:
``add_new_points``) returning ``(frame_idx, obj_ids, mask_logits)``, and per frame
``obj_ids, mask_logits = track(rgb)``; logits are (objects, 1, H, W), positive inside the mask.

What was and was not run here: ``sam2`` imports torchvision, which has no CPU build in this workspace,
and no SAM2 weights can be downloaded, so this adapter is tested with a stand-in predictor that has the
same methods and shapes (tests/test_sam2_segmenter.py); the real predictor has not been run. SAM2 needs
colour: the node then lifts from the depth aligned to colour (realsense2_camera's aligned_depth_to_color).

Prompts: ``pixel`` and ``box`` go to SAM2 as they are; ``point`` (3D) is projected into the image;
``auto`` asks the depth segmenter for the blob nearest the workspace centre and prompts with its box.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from recipe_perception.depth_segmenter import DepthSegmenter
from recipe_perception.segmenter import Prompt, Segmentation, SegmenterInput

OBJ_ID = 1


def build_sam2_predictor(checkpoint: str, config: str, device: str = "cpu") -> Any:
    """SAM2's camera predictor; a clear error when the package, torchvision or the checkpoint is missing."""
    from pathlib import Path

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(
            f"sam2_checkpoint: no file {checkpoint!r} (download a SAM2 checkpoint, e.g. "
            "sam2.1_hiera_tiny.pt, from the SAM2 release)"
        )
    try:
        from sam2.build_sam import build_sam2_camera_predictor  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError(
            "the sam2 segmenter needs SAM2's camera predictor (segment-anything-2-real-time) and "
            f"torchvision: "
            f"{exc}. Use segmenter: depth where they cannot be installed"
        ) from None
    return build_sam2_camera_predictor(config, checkpoint, device=device)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


class Sam2Segmenter:
    name = "sam2"
    needs_color = True

    def __init__(
        self,
        predictor: Any = None,
        predictor_factory: Callable[[], Any] | None = None,
        prompt_helper: DepthSegmenter | None = None,
        min_mask_px: int = 20,
    ) -> None:
        """``predictor`` (or ``predictor_factory()``, called on first use) has the camera predictor's API."""
        self._predictor = predictor
        self._factory = predictor_factory
        self.helper = prompt_helper or DepthSegmenter()
        self.min_mask_px = min_mask_px
        self.prompt = Prompt("auto")
        self._started = False

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            if self._factory is None:
                raise RuntimeError("Sam2Segmenter has neither a predictor nor a factory")
            self._predictor = self._factory()
        return self._predictor

    def reset(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self._started = False
        self.helper.reset(prompt)

    def shift(self, delta: np.ndarray) -> None:
        """SAM2 tracks in the image; nothing to move."""

    def _prompt_args(self, frame: SegmenterInput) -> dict[str, Any] | str:
        p = self.prompt
        if p.kind == "pixel":
            return {
                "points": np.array([[p.values[0], p.values[1]]], np.float32),
                "labels": np.array([1], np.int32),
            }
        if p.kind == "box":
            return {"bbox": np.array([[p.values[0], p.values[1]], [p.values[2], p.values[3]]], np.float32)}
        if p.kind == "point":
            pc = frame.extrinsics.from_parent(np.asarray(p.values))
            if pc[2] <= 0:
                return f"the prompt point {p} is behind the camera"
            k = frame.intrinsics
            u, v = k.fx * pc[0] / pc[2] + k.cx, k.fy * pc[1] / pc[2] + k.cy
            if not (0 <= u < k.width and 0 <= v < k.height):
                return f"the prompt point {p} projects outside the image ({u:.0f}, {v:.0f})"
            return {"points": np.array([[u, v]], np.float32), "labels": np.array([1], np.int32)}
        seg = self.helper.segment(frame)  # auto: the depth segmenter's pick, as a box
        if seg.mask is None:
            return f"auto prompt: {seg.reason}"
        vs, us = np.nonzero(seg.mask)
        return {"bbox": np.array([[us.min(), vs.min()], [us.max() + 1, vs.max() + 1]], np.float32)}

    def segment(self, frame: SegmenterInput) -> Segmentation:
        if frame.color is None:
            return Segmentation(None, reason="SAM2 needs a colour frame")
        if frame.color.shape[:2] != frame.depth_m.shape:
            return Segmentation(
                None,
                reason=f"colour {frame.color.shape[:2]} and depth {frame.depth_m.shape} "
                "differ in size: SAM2 needs depth aligned to colour",
            )
        pred = self.predictor
        if not self._started:
            args = self._prompt_args(frame)
            if isinstance(args, str):
                return Segmentation(None, reason=args)
            pred.load_first_frame(frame.color)
            add = getattr(pred, "add_new_prompt", None)
            if add is None:  # releases before add_new_prompt
                add = getattr(pred, "add_new_points_or_box", None) or pred.add_new_points
            _, _, logits = add(frame_idx=0, obj_id=OBJ_ID, **args)
            self._started = True
        else:
            _, logits = pred.track(frame.color)
        lg = _to_numpy(logits)
        if lg.ndim == 4:
            lg = lg[0, 0]
        elif lg.ndim == 3:
            lg = lg[0]
        if lg.shape != frame.depth_m.shape:
            return Segmentation(
                None, reason=f"SAM2 returned a {lg.shape} mask for a {frame.depth_m.shape} frame"
            )
        mask = lg > 0.0
        n = int(np.count_nonzero(mask))
        if n < self.min_mask_px:
            return Segmentation(None, occluded=True, reason=f"SAM2's mask has {n} pixels (object hidden?)")
        score = float(np.mean(1.0 / (1.0 + np.exp(-np.clip(lg[mask], -30.0, 30.0)))))
        return Segmentation(mask, score=score)
