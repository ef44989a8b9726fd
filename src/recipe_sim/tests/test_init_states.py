import time

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_sim.init_states import InitStates, InitStatesError
from recipe_sim.scripted_play import generate


def _states(m: int = 5, **kw) -> InitStates:
    q = np.zeros((m, 26))
    pose = np.tile([0.35, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0], (m, 1))
    args = dict(task="grasp_reach", hand="fourier", source="scripted", q=q, object_pose=pose)
    args.update(kw)
    return InitStates(**args)


def test_round_trip_and_sampling(tmp_path):
    s = _states(7, q=np.random.default_rng(0).uniform(*robot_spec.actuated_limits(), size=(7, 26)))
    path = s.save(tmp_path / "gr.npz")
    back = InitStates.load(path, task="grasp_reach")
    np.testing.assert_array_equal(back.q, s.q)
    assert back.source == "scripted" and len(back) == 7
    a = back.sample(np.random.default_rng(3), 20)
    b = back.sample(np.random.default_rng(3), 20)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (20, 26) and a[1].shape == (20, 7)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"q": np.zeros((5, 25))}, r"q must be \(M, 26\)"),
        ({"q": np.full((5, 26), np.nan)}, "NaN"),
        ({"source": "robot"}, "source"),
        ({"object_pose": np.zeros((5, 7))}, "unit length"),
        ({"q": np.full((5, 26), 5.0)}, "outside its limits"),
    ],
)
def test_invalid_states_are_named(kw, match):
    with pytest.raises(InitStatesError, match=match):
        _states(**kw)


def test_corrupted_and_mismatched_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InitStatesError, match="not a readable"):
        InitStates.load(bad)
    good = _states().save(tmp_path / "good.npz")
    with pytest.raises(InitStatesError, match="recorded for task 'grasp_reach'"):
        InitStates.load(good, task="handover")
    with np.load(good) as z:
        data = dict(z)
    data["joint_names"] = data["joint_names"][::-1]
    np.savez(tmp_path / "order.npz", **data)
    with pytest.raises(InitStatesError, match="joint order"):
        InitStates.load(tmp_path / "order.npz")


@pytest.mark.parametrize("task", ["grasp_reach", "box_lift", "handover"])
def test_scripted_play_gives_labelled_physical_states(task):
    s = generate(task, episodes=2, seed=0, progress=False)
    assert s.source == "scripted" and s.task == task and len(s) > 20
    # Objects stay on the table and the hands actually move (states are not all the same pose).
    assert (s.object_pose[:, 2] > 0.84).all()
    assert np.ptp(s.q[:, :14], axis=0).max() > 0.3


def test_states_of_each_object_are_sampled_for_that_object(tmp_path):
    q = np.zeros((6, 26))
    q[:, 0] = np.arange(6) * 0.1  # a label per row
    objects = np.array(["can_medium"] * 2 + ["bottle"] * 4)
    s = _states(6, q=q, objects=objects)
    back = InitStates.load(s.save(tmp_path / "obj.npz"))
    np.testing.assert_array_equal(back.objects, objects)
    want = np.array(["bottle", "can_medium", "bottle", "cube_small"] * 25)
    got, _ = back.sample(np.random.default_rng(0), len(want), want)
    rows = np.rint(got[:, 0] / 0.1).astype(int)
    assert set(rows[want == "can_medium"]) == {0, 1}
    assert set(rows[want == "bottle"]) == {2, 3, 4, 5}
    assert set(rows[want == "cube_small"]) == set(range(6))  # no states of it: any state
    with pytest.raises(InitStatesError, match="objects must be"):
        _states(6, q=q, objects=objects[:3])
    with pytest.raises(ValueError, match="objects must have shape"):
        back.sample(np.random.default_rng(0), 3, ["bottle"])


def test_grasp_reach_play_lifts_a_can_with_the_side_grasp():
    s = generate("grasp_reach", episodes=3, seed=0, object_name=["can_medium", "cube_small"], progress=False)
    assert set(s.objects) == {"can_medium", "cube_small"}
    z = s.object_pose[:, 2]
    can = s.objects == "can_medium"
    assert z[can].max() - z[can].min() > 0.08  # carried toward a goal 10-20 cm above the table
    assert np.mean(z[can] - z[can].min() > 0.05) > 0.1


def test_teleop_recorder_records_human_states(tmp_path):
    rclpy = pytest.importorskip("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from recipe_sim.init_states_recorder import InitStateRecorder

    rclpy.init()
    try:
        rec = InitStateRecorder("grasp_reach", tmp_path / "human.npz", duration=1.5)
        teleop = rclpy.create_node("teleop_test")
        pub = teleop.create_publisher(JointState, "/init_state_recorder/joint_targets", 10)
        ex = SingleThreadedExecutor()
        ex.add_node(rec)
        ex.add_node(teleop)
        target = {"left_elbow_pitch_joint": -1.6, "L_index_proximal_joint": -0.8}  # bend: lifts the hand
        bad = JointState(name=["no_such_joint"], position=[0.1])
        deadline = time.monotonic() + 20
        while not rec.done.is_set() and time.monotonic() < deadline:
            pub.publish(JointState(name=list(target), position=list(target.values())))
            pub.publish(bad)
            ex.spin_once(timeout_sec=0.05)
        assert rec.done.is_set()
        path = rec.save()
        ex.shutdown()
        teleop.destroy_node()
        rec.destroy_node()
    finally:
        rclpy.try_shutdown()
    s = InitStates.load(path)
    assert s.source == "human" and len(s) == 15
    names = robot_spec.actuated_joint_names()
    assert s.q[-1, names.index("left_elbow_pitch_joint")] == pytest.approx(-1.6, abs=0.1)
    assert s.q[-1, names.index("L_index_proximal_joint")] == pytest.approx(-0.8, abs=0.15)
    assert rec.rejected > 0
