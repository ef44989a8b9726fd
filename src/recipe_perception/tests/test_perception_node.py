"""The perception node over real rclpy: synthetic frames in, ObjectState out, and every bad input."""

import math
import time

import numpy as np
import pytest
from perception_testing import STREAM, TABLE_Z, Rig, raycast_boxes

from recipe_common import frames
from recipe_common.cameras import HEAD, camera_table
from recipe_interfaces.msg import ObjectState

BOX = np.array([0.30, 0.02, TABLE_Z + 0.03])
HALF = np.array([0.03, 0.03, 0.03])
OTHER = np.array([0.40, -0.20, TABLE_Z + 0.04])
# No robot in these frames: the self-filter (MuJoCo) is off, so the node runs without recipe_sim.
PARAMS = {
    "self_filter": False,
    "rate_hz": 10.0,
    "occluded_timeout_s": 0.6,
    "frame_timeout_s": 0.6,
    "init_timeout_s": 1.0,
}


@pytest.fixture()
def rig():
    r = Rig(PARAMS)
    yield r
    r.close()


def _scene(*centres):
    return raycast_boxes([(c, HALF if c is BOX else np.array([0.03, 0.03, 0.04])) for c in centres])


def _position(m: ObjectState) -> np.ndarray:
    return np.array([m.position.x, m.position.y, m.position.z])


def _stamp(m: ObjectState) -> float:
    return m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec


def _tracking(rig, after=0):
    return [m for m in rig.states[after:] if m.status == ObjectState.STATUS_TRACKING]


def test_tracks_the_object_in_base_link(rig):
    depth = _scene(BOX)
    rig.stream(lambda: rig.publish_depth(depth), 1.5)
    got = rig.wait_for(lambda: _tracking(rig), 5.0)
    assert got, [m.status for m in rig.states]
    m = got[-1]
    assert m.header.frame_id == frames.BASE
    assert np.linalg.norm(_position(m) - BOX) < 0.006
    assert 0.5 < m.confidence <= 1.0
    # Until the first track, the node reports INITIALIZING with no position (on a busy host the first
    # message can be missed before the subscription matches, or the first frame may already track).
    first = next(i for i, s in enumerate(rig.states) if s.status == ObjectState.STATUS_TRACKING)
    for s in rig.states[:first]:
        assert s.status == ObjectState.STATUS_INITIALIZING and math.isnan(s.position.x), s


def test_debug_and_head_images(rig):
    depth = _scene(BOX)
    head_k = camera_table()[HEAD].stream
    head = np.full((head_k.height, head_k.width), 0.7, np.float32)
    head[200:280, 380:460] = 0.55  # something above the table in the head view
    sub = rig.io.create_subscription  # the debug image is drawn only for a subscriber: one exists
    assert sub is not None
    rig.stream(lambda: (rig.publish_depth(depth), rig.publish_depth(head, topic="head", k=head_k)), 1.5)
    assert rig.wait_for(lambda: rig.images["debug"] and rig.images["head"] and rig.images["head_seg"], 5.0)
    dbg = rig.images["debug"][-1]
    assert (dbg.encoding, dbg.width, dbg.height) == ("rgb8", STREAM.width // 2, STREAM.height // 2)
    img = rig.images["head"][-1]
    assert (img.encoding, img.width, img.height) == ("32FC1", 84, 84)
    arr = np.frombuffer(bytes(img.data), "<f4").reshape(84, 84)
    assert np.all(np.isfinite(arr)) and 0.5 < float(arr.min()) and float(arr.max()) <= 0.71


@pytest.mark.parametrize(
    "case", ["wrong encoding", "size mismatch", "all zero", "all nan", "stale", "no frames"]
)
def test_bad_input_never_gives_a_made_up_position(rig, case):
    depth = _scene(BOX)
    rig.stream(lambda: rig.publish_depth(depth), 1.0)
    assert rig.wait_for(lambda: _tracking(rig), 5.0)
    n0 = len(rig.states)
    bad = {
        "wrong encoding": lambda: rig.publish_depth(
            raw=bytes(STREAM.width * STREAM.height * 3),
            encoding="rgb8",
            width=STREAM.width,
            height=STREAM.height,
        ),
        "size mismatch": lambda: rig.publish_depth(depth, info_size=(640, 480)),
        "all zero": lambda: rig.publish_depth(np.zeros_like(depth)),
        "all nan": lambda: rig.publish_depth(np.full_like(depth, np.nan), encoding="32FC1"),
        "stale": lambda: rig.publish_depth(depth, stamp=rig.now() - 5.0),
        "no frames": lambda: None,
    }[case]
    last_good = rig.now()  # every good frame is stamped before this
    rig.stream(bad, 1.6)
    # What the node says after the last good frame (it republishes that frame's result until a new frame
    # comes, so the rate stays steady).
    after = [m for m in rig.states[n0:] if _stamp(m) > last_good]
    assert after and not [m for m in after if m.status == ObjectState.STATUS_TRACKING]
    assert after[-1].status == ObjectState.STATUS_LOST and math.isnan(after[-1].position.x)
    for m in after:
        assert m.status in (ObjectState.STATUS_OCCLUDED, ObjectState.STATUS_LOST)
        if m.status == ObjectState.STATUS_OCCLUDED:  # the last measured position, held: nothing new
            assert np.linalg.norm(_position(m) - BOX) < 0.006
    expected = {
        "wrong encoding": "encoding 'rgb8'",
        "size mismatch": "camera_info says 640x480",
        "all zero": "all-zero/NaN",
        "all nan": "all-zero/NaN",
        "stale": "stale depth frame",
        "no frames": "no new depth frame",
    }[case]
    assert rig.wait_for(lambda: any(expected in s.message for d in rig.diagnostics for s in d.status), 3.0)


def test_reset_service_and_prompt_parameter(rig):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    from std_srvs.srv import Trigger

    depth = _scene(BOX, OTHER)
    rig.stream(lambda: rig.publish_depth(depth), 1.2)
    assert (
        np.linalg.norm(_position(rig.wait_for(lambda: _tracking(rig), 5.0)[-1]) - BOX) < 0.01
    )  # auto: nearest

    client = rig.io.create_client(Trigger, rig.node.cfg.reset_service)
    assert client.wait_for_service(5.0)
    resp = client.call(Trigger.Request(), timeout_sec=5.0)
    assert resp.success and "auto" in resp.message
    n0 = len(rig.states)
    # Reset and no new frame yet: the old estimate is gone, the track waits for the prompt's object.
    assert rig.wait_for(lambda: len(rig.states) > n0 + 1, 3.0)
    assert all(m.status == ObjectState.STATUS_INITIALIZING for m in rig.states[n0 + 1 : n0 + 3])
    rig.stream(lambda: rig.publish_depth(depth), 1.0)
    assert _tracking(rig, n0)

    # Point the prompt at the other box (a 3D point in base_link): tracking restarts on it.
    params = rig.io.create_client(SetParameters, "/perception/set_parameters")
    assert params.wait_for_service(5.0)
    req = SetParameters.Request()
    req.parameters = [Parameter("target_prompt", value="point:0.40,-0.20,0.0").to_parameter_msg()]
    assert params.call(req, timeout_sec=5.0).results[0].successful
    bad = SetParameters.Request()
    bad.parameters = [Parameter("target_prompt", value="elbow").to_parameter_msg()]
    assert not params.call(bad, timeout_sec=5.0).results[0].successful
    n1 = len(rig.states)
    rig.stream(lambda: rig.publish_depth(depth), 1.5)
    last = rig.wait_for(lambda: _tracking(rig, n1), 5.0)[-1]
    assert np.linalg.norm(_position(last)[:2] - OTHER[:2]) < 0.01


def test_the_self_filter_gets_the_joints_at_the_frames_capture_time_not_the_newest():
    """Frames are processed up to a period after they were taken; rendering the robot from the newest joint
    states put a moving hand centimetres ahead of the imaged one (recipe_perception.joint_history)."""
    from perception_testing import stamp_msg
    from sensor_msgs.msg import JointState

    from recipe_common import robot_spec
    from recipe_perception.pipeline import ThirdViewPipeline

    seen = []
    rig = Rig({**PARAMS, "self_filter": True, "max_frame_age_s": 5.0, "frame_timeout_s": 5.0})  # a busy host
    try:
        pipe = rig.node.pipeline
        assert pipe.uses_self_filter

        def spy(frame, joints=None, color=None):
            seen.append((frame.stamp, joints))
            return ThirdViewPipeline.bad_frame(pipe, frame.stamp, "spy")

        pipe.process = spy
        names = robot_spec.state_joint_names(robot_spec.DEFAULT_HAND)
        assert rig.wait_for(lambda: rig.pub["joints"].get_subscription_count() > 0, 5.0)
        t0 = rig.now() - 0.3  # the newest joint state is stamped now
        for k in range(7):  # every 0.05 s over 0.3 s; the first joint's position is its stamp's offset
            js = JointState(name=names, position=[0.05 * k] + [0.0] * (len(names) - 1))
            js.header.stamp = stamp_msg(t0 + 0.05 * k)
            rig.pub["joints"].publish(js)
            time.sleep(0.02)  # the subscription keeps 5
        assert rig.wait_for(lambda: len(rig.node._joints) == 7, 5.0)
        depth = _scene(BOX)
        rig.publish_depth(depth, stamp=t0 + 0.125)  # taken 0.175 s before the newest joint state
        assert rig.wait_for(lambda: seen, 5.0)
        stamp, (got_names, q) = seen[0]
        assert stamp == pytest.approx(t0 + 0.125, abs=1e-6)
        assert got_names == list(names) and q[0] == pytest.approx(0.125, abs=1e-6)
    finally:
        rig.close()
