"""JointHistory: the joint positions at a depth frame's capture time."""

import pytest

from recipe_perception.joint_history import JointHistory

NAMES = ["a", "b"]


def _history() -> JointHistory:
    h = JointHistory(horizon_s=1.0)
    for k in range(11):  # 10 Hz, joint a moving at 1 rad/s
        h.add(10.0 + 0.1 * k, NAMES, [0.1 * k, 2.0])
    return h


def test_a_frame_gets_the_joints_interpolated_at_its_capture_time_not_the_newest():
    names, q = _history().at(10.25)
    assert names == NAMES and q == pytest.approx([0.25, 2.0])


def test_a_frame_newer_than_every_joint_state_gets_the_newest_and_one_older_than_the_history_none():
    h = _history()
    assert h.at(12.0)[1] == pytest.approx([1.0, 2.0])
    assert h.at(9.5) is None
    h.add(11.5, NAMES, [5.0, 2.0])  # the history keeps horizon_s: 10.0-10.4 fall out
    assert len(h) == 7 and h.at(10.45) is None and h.at(10.5)[1] == pytest.approx([0.5, 2.0])


def test_out_of_order_states_are_dropped_and_new_names_start_over():
    h = _history()
    h.add(10.55, NAMES, [9.0, 9.0])
    assert h.at(10.55)[1] == pytest.approx([0.55, 2.0])
    h.add(11.1, ["c"], [3.0])
    assert len(h) == 1 and h.at(11.1) == (["c"], [3.0])
    with pytest.raises(ValueError, match="names"):
        h.add(11.2, ["c"], [1.0, 2.0])
    assert JointHistory().at(0.0) is None
