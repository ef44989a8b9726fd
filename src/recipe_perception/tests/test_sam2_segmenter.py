"""The SAM2 adapter against a stand-in with the camera predictor's API (no SAM2 weights or torchvision
here: see sam2_segmenter's docstring for what was and was not run)."""

import numpy as np
import pytest
from perception_testing import EXT, STREAM, TABLE_Z, Rig, raycast_boxes

from recipe_interfaces.msg import ObjectState
from recipe_perception.depth_frame import DepthFrame
from recipe_perception.pipeline import ThirdViewPipeline
from recipe_perception.sam2_segmenter import Sam2Segmenter, build_sam2_predictor
from recipe_perception.segmenter import Prompt
from recipe_perception.tracking import TrackStatus

BOX = np.array([0.30, 0.02, TABLE_Z + 0.03])
HALF = np.array([0.03, 0.03, 0.03])


class StandInPredictor:
    """SAM2CameraPredictor's streaming API; 'segments' the red pixels connected to the prompt."""

    def __init__(self):
        self.calls = []

    def load_first_frame(self, img):
        self.calls.append(("load_first_frame", img.shape))

    def _logits(self, img):
        red = (img[..., 0] > 200) & (img[..., 1] < 50)
        return np.where(red, 8.0, -8.0).astype(np.float32)[None, None]  # (objects, 1, H, W)

    def add_new_prompt(self, frame_idx, obj_id, points=None, labels=None, bbox=None):
        self.calls.append(
            (
                "add_new_prompt",
                frame_idx,
                obj_id,
                None if points is None else points.tolist(),
                None if bbox is None else bbox.tolist(),
            )
        )
        self._img = None
        return frame_idx, [obj_id], self._last

    def track(self, img):
        self.calls.append(("track", img.shape))
        return [1], self._logits(img)


def _rgb(depth):
    """Colour aligned with the depth: the box red, the rest grey."""
    img = np.full((*depth.shape, 3), 90, np.uint8)
    box_px = np.abs(np.nan_to_num(depth - raycast_boxes([]), nan=1.0)) > 1e-4  # what the box changes
    img[box_px] = (230, 20, 20)
    return img


def _prepare(pred, img):
    pred._last = pred._logits(img)


@pytest.mark.parametrize("prompt", ["pixel:430,220", "box:380,180,470,260", "auto", "point:0.30,0.02,0.0"])
def test_prompts_reach_the_predictor_and_masks_are_lifted(prompt):
    depth = raycast_boxes([(BOX, HALF)])
    rgb = _rgb(depth)
    pred = StandInPredictor()
    _prepare(pred, rgb)
    pipe = ThirdViewPipeline(Sam2Segmenter(predictor=pred), EXT, Prompt.parse(prompt))
    for i in range(3):
        est = pipe.process(DepthFrame(depth, STREAM, 0.1 * i, "", 1.0), None, rgb)
        assert est.status == TrackStatus.TRACKING, est.reason
        assert np.linalg.norm(est.position - BOX) < 0.01
    kinds = [c[0] for c in pred.calls]
    assert kinds == ["load_first_frame", "add_new_prompt", "track", "track"]
    add = pred.calls[1]
    if prompt.startswith("box") or prompt == "auto":
        assert add[4] is not None and add[3] is None
    else:
        u, v = add[3][0]
        assert 400 < u < 460 and 180 < v < 260  # the 3D point projects onto the box


def test_empty_mask_and_missing_colour():
    depth = raycast_boxes([(BOX, HALF)])
    pred = StandInPredictor()
    grey = np.full((*depth.shape, 3), 90, np.uint8)
    _prepare(pred, grey)
    pipe = ThirdViewPipeline(Sam2Segmenter(predictor=pred), EXT, Prompt.parse("pixel:430,220"))
    est = pipe.process(DepthFrame(depth, STREAM, 0.0, "", 1.0), None, grey)
    assert est.status == TrackStatus.INITIALIZING and "SAM2's mask has 0 pixels" in est.reason
    est = pipe.process(DepthFrame(depth, STREAM, 0.1, "", 1.0), None, None)
    assert "needs a colour frame" in est.reason


def test_missing_checkpoint_or_package_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sam2_checkpoint: no file"):
        build_sam2_predictor(str(tmp_path / "none.pt"), "configs/sam2.1/sam2.1_hiera_t.yaml")
    ckpt = tmp_path / "fake.pt"
    ckpt.write_bytes(b"")
    try:
        import sam2  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="segmenter: depth"):
            build_sam2_predictor(str(ckpt), "configs/sam2.1/sam2.1_hiera_t.yaml")


def test_node_with_the_sam2_stand_in_uses_colour_and_aligned_depth():
    depth = raycast_boxes([(BOX, HALF)])
    rgb = _rgb(depth)
    pred = StandInPredictor()
    _prepare(pred, rgb)
    params = {
        "segmenter": "sam2",
        "sam2_checkpoint": "stand-in",
        "target_prompt": "pixel:430,220",
        "rate_hz": 10.0,
    }
    rig = Rig(params, segmenter=Sam2Segmenter(predictor=pred))
    try:
        from sensor_msgs.msg import Image

        def publish():
            stamp = rig.now()
            rig.publish_depth(depth, topic="aligned", stamp=stamp)
            img = Image()
            img.header.stamp = rig.publish_stamp = __import__("perception_testing").stamp_msg(stamp)
            img.height, img.width, img.encoding, img.step = 480, 848, "rgb8", 848 * 3
            img.data = rgb.tobytes()
            rig.pub["color"].publish(img)

        rig.stream(publish, 1.5)
        ok = rig.wait_for(lambda: [m for m in rig.states if m.status == ObjectState.STATUS_TRACKING], 5.0)
        assert ok, [m.status for m in rig.states]
        m = ok[-1]
        assert np.linalg.norm([m.position.x - BOX[0], m.position.y - BOX[1], m.position.z - BOX[2]]) < 0.01
    finally:
        rig.close()
