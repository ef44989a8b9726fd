"""The depth segmenter's target choice (prompts), association and occlusion reasons, on ray-cast frames."""

import numpy as np
import pytest
from perception_testing import EXT, STREAM, TABLE_Z, raycast_boxes

from recipe_perception.depth_segmenter import DepthSegmenter, depth_edges, downsample_depth
from recipe_perception.segmenter import Prompt, SegmenterInput

A = (np.array([0.30, 0.05, TABLE_Z + 0.03]), np.array([0.03, 0.03, 0.03]))
B = (np.array([0.45, -0.20, TABLE_Z + 0.04]), np.array([0.025, 0.025, 0.04]))


def _project(p):
    pc = EXT.from_parent(p)
    return STREAM.fx * pc[0] / pc[2] + STREAM.cx, STREAM.fy * pc[1] / pc[2] + STREAM.cy


def _frame(depth):
    return SegmenterInput(depth, STREAM, EXT, 0.0)


def _picked(seg, depth, box):
    # The points are the visible surface, a half-size in front of the centre; the objects are 25 cm apart.
    return seg.mask is not None and np.linalg.norm(np.median(seg.points, axis=0)[:2] - box[0][:2]) < 0.05


@pytest.mark.parametrize(
    "prompt, target",
    [
        ("auto", A),  # nearest the workspace centre (0.30, 0.0)
        ("point:0.45,-0.20,0.0", B),
        ("pixel", B),
        ("box", A),
    ],
)
def test_prompts_pick_their_object(prompt, target):
    depth = raycast_boxes([A, B])
    if prompt == "pixel":
        u, v = _project(target[0])
        prompt = f"pixel:{u:.0f},{v:.0f}"
    elif prompt == "box":
        u, v = _project(target[0])
        prompt = f"box:{u - 30:.0f},{v - 30:.0f},{u + 30:.0f},{v + 30:.0f}"
    seg = DepthSegmenter()
    seg.reset(Prompt.parse(prompt))
    out = seg.segment(_frame(depth))
    assert _picked(out, depth, target), out.reason


def test_auto_prompt_skips_fragments_nearer_the_centre():
    """A fingertip the self-filter leaves at the workspace centre loses to a box whose visible face is
    25 cm away: the box_lift deploy tracked a hand fragment this way in 13 of 20 trials."""
    box = (np.array([0.45, 0.0, TABLE_Z + 0.11]), np.array([0.10, 0.16, 0.11]))
    tip = (np.array([0.30, 0.01, TABLE_Z + 0.25]), np.array([0.02, 0.02, 0.02]))
    seg = DepthSegmenter()
    seg.reset(Prompt("auto"))
    out = seg.segment(_frame(raycast_boxes([box, tip])))
    assert len(seg.last_blobs) == 2  # the fragment is a blob of its own
    assert out.mask is not None and np.median(out.points, axis=0)[0] > 0.5  # the box's face (x 0.55)


def test_association_follows_the_object_and_reports_why_it_is_missing():
    seg = DepthSegmenter()
    seg.reset(Prompt("auto"))
    assert _picked(seg.segment(_frame(raycast_boxes([A, B]))), None, A)
    moved = (A[0] + [0.0, 0.03, 0.0], A[1])  # 3 cm between frames: still the same object
    assert _picked(seg.segment(_frame(raycast_boxes([moved, B]))), None, moved)
    # A wall in front of it: hidden by a nearer surface.
    wall = (np.array([0.8, 0.08, 0.10]), np.array([0.01, 0.15, 0.2]))
    out = seg.segment(_frame(raycast_boxes([moved, B, wall])))
    assert out.mask is None and out.occluded and "nearer surface" in out.reason
    # Gone: not occluded, just not there; the other object is not taken instead.
    out = seg.segment(_frame(raycast_boxes([B])))
    assert out.mask is None and not out.occluded and "no blob within 0.08 m" in out.reason


def test_no_object_and_no_table():
    seg = DepthSegmenter()
    seg.reset(Prompt("auto"))
    out = seg.segment(_frame(raycast_boxes([])))
    assert out.mask is None and "no object matches the prompt auto" in out.reason
    out = seg.segment(_frame(np.full((STREAM.height, STREAM.width), 5.0, np.float32)))
    assert out.mask is None and "no table plane" in out.reason


def test_downsample_and_edges():
    d = np.array([[1.0, np.nan, 2.0, 2.0], [1.0, 1.0, np.nan, np.nan]], np.float32)
    out = downsample_depth(d, 2)
    assert out[0, 0] == pytest.approx(1.0) and out[0, 1] == pytest.approx(2.0)  # holes do not count
    assert np.isnan(downsample_depth(np.array([[1.0, np.nan], [np.nan, np.nan]], np.float32), 2)[0, 0])
    step = np.array([[1.0, 1.0, 1.5, 1.5]], np.float32)
    assert depth_edges(step, 0.03).tolist() == [[False, False, True, False]]  # only the far side
