"""Table plane fit, track status rules and the hand attachment: pure cores."""

import numpy as np
import pytest

from recipe_perception.hand_attachment import HandAttachment, HandPose
from recipe_perception.plane import fit_plane
from recipe_perception.tracking import TrackState, TrackStatus


def test_ransac_finds_the_table_under_clutter():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.4, 0.4, (3000, 2))
    z = -0.03 + 0.02 * xy[:, 0] + rng.normal(0, 0.002, 3000)  # slightly tilted, noisy table
    clutter = rng.uniform([-0.4, -0.4, 0.0], [0.4, 0.4, 0.3], (800, 3))
    wall = np.column_stack([np.full(500, 0.5), rng.uniform(-0.4, 0.4, 500), rng.uniform(-0.2, 0.5, 500)])
    plane = fit_plane(np.concatenate([np.column_stack([xy, z]), clutter, wall]), threshold=0.008)
    assert plane is not None and plane.normal[2] > 0.99
    assert plane.z_at(0.0, 0.0) == pytest.approx(-0.03, abs=0.002)
    assert plane.height(np.array([0.2, 0.0, 0.1])) == pytest.approx(0.126, abs=0.003)


def test_no_plane_in_too_few_points():
    assert fit_plane(np.zeros((5, 3))) is None


def test_track_status_rules():
    t = TrackState(occluded_timeout_s=1.0, init_timeout_s=2.0)
    t.reset(10.0)
    u = t.missing(11.0, "nothing yet")
    assert u.status == TrackStatus.INITIALIZING and u.position is None
    assert t.missing(12.5, "nothing").status == TrackStatus.LOST
    u = t.measured(13.0, np.array([0.3, 0.0, 0.05]), 0.9)
    assert u.status == TrackStatus.TRACKING and u.confidence == pytest.approx(0.9)
    u = t.missing(13.5, "hidden")
    assert u.status == TrackStatus.OCCLUDED and np.allclose(u.position, [0.3, 0.0, 0.05])
    assert u.confidence == pytest.approx(0.45)
    u = t.missing(14.2, "hidden")
    assert u.status == TrackStatus.LOST and u.position is None and "not seen for 1.2 s" in u.reason
    u = t.predicted(14.4, np.array([0.3, 0.1, 0.2]), "carried")
    assert u.status == TrackStatus.OCCLUDED and np.allclose(u.position, [0.3, 0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        t.measured(15.0, np.array([np.nan, 0, 0]), 1.0)


def _hand(pos, closure, side="left", yaw=0.0):
    c, s = np.cos(yaw), np.sin(yaw)
    return HandPose(side, np.asarray(pos, float), np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]), closure)


def test_a_closed_hand_carries_what_it_held():
    a = HandAttachment(attach_dist_m=0.1, min_closure=0.3)
    obj = np.array([0.3, 0.05, 0.0])
    a.observe(obj, [_hand([0.3, 0.12, 0.0], 0.1), _hand([0.3, -0.3, 0.0], 0.0, "right")])
    assert a.attached and a.side == "left"
    assert a.predict([_hand([0.3, 0.12, 0.0], 0.1)]) is None  # still open: carries nothing
    moved = a.predict([_hand([0.3, 0.12, 0.15], 0.8, yaw=np.pi / 2)])
    assert np.allclose(moved, [0.37, 0.12, 0.15])  # the offset turns with the palm
    a.observe(obj, [_hand([0.8, 0.8, 0.0], 0.9)])  # no palm near: no longer in a hand
    assert not a.attached
