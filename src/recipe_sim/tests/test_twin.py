"""SimTwin: the GR1 as a robot (targets in, joint states and depth out), with an optional hidden overlay."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_sim.model.scene import load_scene
from recipe_sim.twin import SimTwin

ROLL = robot_spec.actuated_joint_names().index("left_shoulder_roll_joint")
PITCH = robot_spec.actuated_joint_names().index("left_shoulder_pitch_joint")


@pytest.fixture(scope="module")
def twin():
    return SimTwin(object_name="can_small")


def _step_response(tw: SimTwin, joint: int, target: float, seconds: float) -> np.ndarray:
    tw.reset()
    q = np.zeros(robot_spec.ACTION_DIM)
    q[joint] = target
    tw.set_targets(q)
    out = []
    for _ in range(round(seconds / tw.dt)):
        tw.step()
        out.append(tw.joint_positions()[joint])
    return np.array(out)


def test_description(twin):
    assert twin.joint_names == robot_spec.state_joint_names("fourier")
    assert twin.actuated_names == robot_spec.actuated_joint_names()
    assert twin.dt == pytest.approx(1 / 120)
    assert twin.joint_positions().shape == (36,)
    assert twin.joint_velocities().shape == (36,) and twin.joint_efforts().shape == (36,)


def test_tracks_a_step_on_an_arm_joint(twin):
    """Shoulder roll 0 -> 0.5 rad (arm out sideways, clear of the table)."""
    traj = _step_response(twin, ROLL, 0.5, 1.0)
    t90 = np.argmax(traj >= 0.45) * twin.dt
    assert 0.0 < t90 < 0.2  # within two 10 Hz policy steps
    assert traj.max() < 0.5 * 1.15  # overshoot under 15 %
    assert abs(traj[-1] - 0.5) < 0.03  # settles (gravity sag of a PD loop included)
    others = np.delete(twin.joint_positions()[:14], ROLL)
    assert np.max(np.abs(others)) < 0.05  # the other arm joints hold still
    assert twin.time == pytest.approx(1.0, abs=twin.dt)


def test_tracks_a_10hz_target_stream(twin):
    """Targets sent at the policy rate (10 Hz) along a 0.5 Hz sweep are followed closely."""
    twin.reset()
    errs = []
    for k in range(30):
        s = abs(np.sin(np.pi * (k + 1) * 0.1))
        q = np.zeros(robot_spec.ACTION_DIM)
        q[[PITCH, ROLL]] = 0.4 * s
        twin.set_targets(q)
        twin.advance(0.1)
        errs.append(np.abs(twin.joint_positions()[[PITCH, ROLL]] - q[[PITCH, ROLL]]))
    assert np.max(errs[3:]) < 0.06 and np.mean(errs[3:]) < 0.03


def test_hidden_overlay_changes_the_dynamics(twin):
    soft = SimTwin(overlay={"joints": {"left_shoulder_roll_joint": {"kp": 40.0, "damping": 5.0}}})
    nominal = _step_response(twin, ROLL, 0.5, 0.2)
    tuned = _step_response(soft, ROLL, 0.5, 0.2)
    assert tuned[-1] < nominal[-1] - 0.05  # slower: the overlay really reached the physics
    assert not hasattr(soft, "overlay")  # hidden: not part of the public surface


def test_reset_places_couplings_and_object(twin):
    q = np.zeros(robot_spec.ACTION_DIM)
    q[14:20] = robot_spec.hand_normalized_to_rad(np.full(6, 0.5))
    twin.reset(q)
    pos = twin.joint_positions()
    np.testing.assert_allclose(pos[:26], q)
    for s, side in enumerate(robot_spec.SIDES):
        for c in robot_spec.get_hand("fourier").couplings:
            p = robot_spec.HAND_PREFIX[side]
            qa = pos[twin.joint_names.index(f"{p}_{c.actuated_suffix}_joint")]
            qu = pos[twin.joint_names.index(f"{p}_{c.underactuated_suffix}_joint")]
            assert qu == pytest.approx(c.k * qa + c.b, abs=1e-9), (s, c)
    scene = load_scene()
    obj = twin.object_position()
    np.testing.assert_allclose(obj[:2], scene.spawn_xy)
    assert obj[2] == pytest.approx(scene.table_top_height + 0.05)
    twin.step(60)
    assert np.linalg.norm(twin.object_position() - obj) < 0.005  # resting, not disturbed by the arms
    twin.reset(randomize_object=True)
    assert 0 < np.linalg.norm(twin.object_position()[:2] - scene.spawn_xy) <= 0.02 * np.sqrt(2)


def test_place_robot_moves_only_the_robot_and_keeps_the_clock_and_the_object(twin):
    twin.reset()
    q = np.zeros(robot_spec.ACTION_DIM)
    q[PITCH] = -0.6
    twin.set_targets(q)
    twin.step(100)
    t, obj = twin.time, twin.object_position()
    ready = np.zeros(robot_spec.ACTION_DIM)
    ready[ROLL] = 0.3
    ready[14:20] = robot_spec.hand_normalized_to_rad(np.full(6, 0.5))
    twin.place_robot(ready)
    assert twin.time == t
    np.testing.assert_allclose(twin.joint_positions()[:26], ready, atol=1e-12)
    np.testing.assert_allclose(twin.object_position(), obj, atol=1e-5)
    twin.step(50)  # at rest there, targets = the placed pose
    np.testing.assert_allclose(twin.joint_positions()[:14], ready[:14], atol=0.02)


def test_bad_commands_are_rejected(twin):
    with pytest.raises(ValueError, match="shape"):
        twin.set_targets(np.zeros(25))
    bad = np.zeros(robot_spec.ACTION_DIM)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        twin.set_targets(bad)
    with pytest.raises(ValueError):
        twin.advance(-1.0)
    with pytest.raises(KeyError, match="unknown object"):
        SimTwin(object_name="teapot")
    with pytest.raises(RuntimeError, match="render=False"):
        twin.render_depth("head_depth")
    assert SimTwin().object_position() is None


def test_render_depth_and_camera_info():
    with SimTwin(render=True, object_name="ball_small") as tw:
        for cam in ("head_depth", "third_view"):
            info = tw.camera_info(cam)
            depth = tw.render_depth(cam)
            assert depth.shape == (info["height"], info["width"]) and depth.dtype == np.float32
            assert info["frame_id"].endswith("optical_frame")
            assert np.isfinite(depth).all() and depth.min() > 0.05
        small = tw.render_depth("head_depth", 84, 84)
        assert small.shape == (84, 84)
        head, policy = tw.camera_info("head_depth"), tw.camera_info("head_depth", 84, 84)
        assert policy["fy"] == pytest.approx(head["fy"] * 84 / head["height"])  # same vertical FOV
        assert policy["fx"] == policy["fy"] and policy["cx"] == 41.5
        with pytest.raises(KeyError, match="unknown camera"):
            tw.camera_info("wrist")


def test_published_positions_stay_inside_the_urdf_limits():
    """Arms and hands thrown between their limits hit the table, the object and each other; MuJoCo's
    soft limits let the raw joints pass their stops (by ~0.2 rad), the published positions never do,
    and the penetration is reported rather than hidden."""
    tw = SimTwin(object_name="can_medium")
    lo, hi = robot_spec.actuated_limits("fourier")
    ranges = tw.model.jnt_range[tw.index.joint_ids]
    rng = np.random.default_rng(0)
    for _ in range(12):
        tw.set_targets(np.where(rng.random(robot_spec.ACTION_DIM) < 0.5, lo, hi))
        for _ in range(40):
            tw.step()
            q, dq = tw.joint_positions(), tw.joint_velocities()
            assert np.all(q >= ranges[:, 0]) and np.all(q <= ranges[:, 1])
            assert not np.any((q == ranges[:, 1]) & (dq > 0)) and not np.any((q == ranges[:, 0]) & (dq < 0))
    assert tw.max_limit_penetration > 0.02  # the raw physics did go past a stop: the test means something
    assert tw.max_limit_penetration < 0.5


def test_render_is_a_copy_of_the_current_pose_and_does_not_hold_the_physics():
    import threading

    import mujoco

    from recipe_sim.render import DepthRenderer

    with SimTwin(render=True, object_name="can_small") as tw:
        q = np.zeros(robot_spec.ACTION_DIM)
        q[3] = -1.0
        tw.set_targets(q)
        tw.advance(0.5)
        depth = tw.render_depth("head_depth", 64, 48)
        mujoco.mj_forward(tw.model, tw.data)  # bring the physics' own poses up to its qpos
        with DepthRenderer(tw.model, "head_depth", 64, 48) as direct:
            np.testing.assert_array_equal(depth, direct.render(tw.data))
        # while a render is held up, the physics steps on (it used to wait for the render's lock)
        gate, entered = threading.Event(), threading.Event()
        renderer = tw._renderers[("head_depth", 64, 48)]
        real = renderer.render

        def held_render(data):
            entered.set()
            gate.wait(10.0)
            return real(data)

        renderer.render = held_render
        t = threading.Thread(target=tw.render_depth, args=("head_depth", 64, 48))
        t.start()
        assert entered.wait(10.0)
        t0 = tw.time
        stepper = threading.Thread(target=tw.step, args=(12,))
        stepper.start()
        stepper.join(5.0)
        blocked = stepper.is_alive()  # the step waits for the render: the physics lock is held
        gate.set()
        t.join(10.0)
        stepper.join(10.0)
        assert not blocked
        assert tw.time == pytest.approx(t0 + 12 * tw.dt)
