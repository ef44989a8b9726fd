"""The third-view pipeline without ROS: frame -> self-filter render -> segmenter -> centre -> track status.

The perception node feeds it decoded frames and joint states; the benchmark and the tests feed it the
twin's renders directly, so what they measure is what the node runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from recipe_common.cameras import Intrinsics
from recipe_perception.depth_frame import DepthFrame
from recipe_perception.extrinsics import CameraExtrinsics
from recipe_perception.hand_attachment import HandAttachment, HandPose
from recipe_perception.lifting import CentreEstimator, mask_points
from recipe_perception.segmenter import Prompt, Segmenter, SegmenterInput
from recipe_perception.tracking import TrackState, TrackStatus

SelfFilterFactory = Callable[[Intrinsics], Any]  # -> an object with RobotSelfFilter's methods


@dataclass
class ObjectEstimate:
    stamp: float
    status: TrackStatus
    position: np.ndarray | None  # base frame; None unless TRACKING or OCCLUDED
    confidence: float
    reason: str
    mask: np.ndarray | None = None  # target mask at the depth resolution (TRACKING only)
    process_s: float = 0.0  # wall time of segmentation + lifting (+ the self-filter render)


class ThirdViewPipeline:
    def __init__(
        self,
        segmenter: Segmenter,
        extrinsics: CameraExtrinsics,
        prompt: Prompt | None = None,
        self_filter_factory: SelfFilterFactory | None = None,
        occluded_timeout_s: float = 1.0,
        init_timeout_s: float = 3.0,
        mask_erode_px: int = 2,
        use_hand_attachment: bool = True,
        footprint: tuple[float, float] | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.extrinsics = extrinsics
        self.prompt = prompt or Prompt("auto")
        self._factory = self_filter_factory
        self._filter: Any = None
        self._filter_k: Intrinsics | None = None
        self.track = TrackState(occluded_timeout_s, init_timeout_s)
        self.centre = CentreEstimator(footprint=footprint)
        self.mask_erode_px = mask_erode_px
        self.use_hand_attachment = use_hand_attachment
        self.attachment = HandAttachment()
        self.segmenter.reset(self.prompt)

    @property
    def uses_self_filter(self) -> bool:
        return self._factory is not None and not getattr(self.segmenter, "needs_color", False)

    def reset(self, now: float, prompt: Prompt | None = None) -> None:
        """Forget the target (a new episode); ``prompt`` replaces the current one."""
        if prompt is not None:
            self.prompt = prompt
        self.segmenter.reset(self.prompt)
        self.centre.reset()
        self.attachment.reset()
        self.track.reset(now)

    def bad_frame(self, stamp: float, reason: str) -> ObjectEstimate:
        """A frame that could not be used (or none came): the status says why, no new position."""
        return self._estimate(stamp, self.track.missing(stamp, reason), None, 0.0)

    def _robot_depth(
        self, frame: DepthFrame, scale: int, joints: tuple[Sequence[str], Sequence[float]]
    ) -> np.ndarray:
        k = frame.intrinsics
        kk = k.scaled(k.width // scale, k.height // scale) if scale > 1 else k
        if (
            self._filter is None
            or self._filter_k is None
            or (self._filter_k.width, self._filter_k.height) != (kk.width, kk.height)
        ):
            if self._filter is not None:
                self._filter.close()
            assert self._factory is not None
            self._filter = self._factory(kk)
            self._filter_k = kk
        elif self._filter_k != kk:
            self._filter.set_camera(self.extrinsics.cam_to_parent, kk)
            self._filter_k = kk
        self._filter.set_joints(joints[0], joints[1])
        return self._filter.robot_depth()

    def process(
        self,
        frame: DepthFrame,
        joints: tuple[Sequence[str], Sequence[float]] | None = None,
        color: np.ndarray | None = None,
    ) -> ObjectEstimate:
        t0 = time.perf_counter()
        scale = int(getattr(getattr(self.segmenter, "cfg", None), "scale", 1))
        robot = None
        hands: list[HandPose] = []
        if self.uses_self_filter:
            if joints is None:
                return self.bad_frame(frame.stamp, "no joint states for the robot self-filter")
            robot = self._robot_depth(frame, scale, joints)
            if self.use_hand_attachment:
                hands = self._filter.hand_poses()
        if getattr(self.segmenter, "needs_color", False) and color is None:
            return self.bad_frame(frame.stamp, f"the {self.segmenter.name} segmenter needs a colour frame")
        carried = self.attachment.predict(hands) if hands else None
        if carried is not None and self.track.last_position is not None:
            self.segmenter.shift(carried - self.track.last_position)
        seg = self.segmenter.segment(
            SegmenterInput(
                depth_m=frame.depth_m,
                intrinsics=frame.intrinsics,
                extrinsics=self.extrinsics,
                stamp=frame.stamp,
                color=color,
                robot_depth=robot,
                robot_depth_scale=scale,
            )
        )
        if seg.mask is None:
            reason = ("hidden: " if seg.occluded else "") + seg.reason
            if carried is not None:
                self.centre.previous = carried
                update = self.track.predicted(
                    frame.stamp, carried, reason + "; following the hand that holds it"
                )
                return self._estimate(frame.stamp, update, None, time.perf_counter() - t0)
            update = self.track.missing(frame.stamp, reason)
            if update.status == TrackStatus.LOST and self.track.ever_seen:
                # Start over from the prompt, so the object is picked up again wherever it reappears.
                self.segmenter.reset(self.prompt)
                self.centre.reset()
                self.attachment.reset()
                self.track.reset(frame.stamp - self.track.init_timeout_s)  # stays LOST, not INITIALIZING
            return self._estimate(frame.stamp, update, None, time.perf_counter() - t0)
        points = seg.points
        if points is None:
            mask = seg.mask
            if self.mask_erode_px > 0:  # silhouette pixels are where flying depth lives
                kernel = np.ones((2 * self.mask_erode_px + 1,) * 2, np.uint8)
                mask = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
            points = mask_points(frame.depth_m, mask, frame.intrinsics, self.extrinsics.cam_to_parent)
        plane = getattr(self.segmenter, "plane", None)
        table_z = None
        if plane is not None and len(points):
            med = np.median(points, axis=0)
            table_z = plane.z_at(float(med[0]), float(med[1]))
        centre = self.centre.estimate(points, self.extrinsics.position, table_z, expected=carried)
        if centre is None:
            update = self.track.missing(frame.stamp, "too few valid depth pixels on the target")
            return self._estimate(frame.stamp, update, None, time.perf_counter() - t0)
        if hands:
            # An estimate from a few registered points corrects where the object sits in the hand only partly.
            self.attachment.observe(centre, hands, gain=0.5 if self.centre.registered else 1.0)
        update = self.track.measured(frame.stamp, centre, seg.score)
        return self._estimate(frame.stamp, update, seg.mask, time.perf_counter() - t0)

    @staticmethod
    def _estimate(stamp: float, u: Any, mask: np.ndarray | None, dt: float) -> ObjectEstimate:
        return ObjectEstimate(
            stamp=stamp,
            status=u.status,
            position=u.position,
            confidence=u.confidence,
            reason=u.reason,
            mask=mask,
            process_s=dt,
        )

    def close(self) -> None:
        if self._filter is not None:
            self._filter.close()
            self._filter = None
