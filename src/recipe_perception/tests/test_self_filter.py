"""The robot self-filter renders the robot where the twin's camera sees it, from joint states alone."""

import dataclasses

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_common.cameras import THIRD_VIEW, camera_table
from recipe_perception.extrinsics import from_scene
from recipe_perception.self_filter import RobotSelfFilter, robot_mask

pytest.importorskip("recipe_sim.model.builder")
from recipe_perception.sim_check import TwinScene

STREAM = camera_table()[THIRD_VIEW].stream
K2 = STREAM.scaled(STREAM.width // 2, STREAM.height // 2)


@pytest.fixture(scope="module")
def twin():
    with TwinScene("can_medium", width=K2.width, height=K2.height) as scene:
        yield scene


@pytest.fixture(scope="module")
def self_filter():
    f = RobotSelfFilter(from_scene(THIRD_VIEW).cam_to_parent, K2, padding_m=0.0)
    yield f
    f.close()


def test_render_matches_the_twins_own_camera(twin, self_filter):
    depth = twin.render()
    self_filter.set_joints(twin.joint_names, twin.joint_positions())
    robot = self_filter.robot_depth()
    drawn = np.isfinite(robot)
    assert drawn.sum() > 2000  # torso, arms and hands are in view
    d, r = depth[drawn], robot[drawn]
    same = np.abs(d - r) < 0.003
    hidden = d < r - 0.003  # the table edge and the can are in front of parts of the robot
    assert same.mean() > 0.85, same.mean()
    # Where the filter draws robot the twin never sees past it (a misplaced render would): edges only.
    assert 1.0 - (same | hidden).mean() < 0.01


def test_joint_states_move_the_rendered_arm(twin, self_filter):
    q = dict(zip(twin.joint_names, twin.joint_positions(), strict=True))
    self_filter.set_joint_map(q)
    before = np.isfinite(self_filter.robot_depth())
    q["left_shoulder_pitch_joint"] -= 0.8  # arm forward and up
    assert self_filter.set_joint_map(q) == len(q)
    after = np.isfinite(self_filter.robot_depth())
    assert np.count_nonzero(before != after) > 300


def test_principal_point_offset_shifts_the_render(self_filter, twin):
    self_filter.set_joints(twin.joint_names, twin.joint_positions())
    centred = np.isfinite(self_filter.robot_depth())
    shifted_k = dataclasses.replace(K2, cx=K2.cx + 10.0, cy=K2.cy - 6.0)
    self_filter.set_camera(from_scene(THIRD_VIEW).cam_to_parent, shifted_k)
    try:
        shifted = np.isfinite(self_filter.robot_depth())
    finally:
        self_filter.set_camera(from_scene(THIRD_VIEW).cam_to_parent, K2)
    # cx + 10 moves everything 10 pixels right, cy - 6 six pixels up: the best overlap is at that shift.
    inner = (slice(20, -20), slice(30, -30))
    overlap = {
        (dv, du): np.count_nonzero(shifted[inner] & np.roll(centred, (dv, du), axis=(0, 1))[inner])
        for dv in range(-9, 4)
        for du in range(5, 16)
    }
    assert max(overlap, key=overlap.get) == (-6, 10)


def test_padding_grows_the_robot(twin):
    ext = from_scene(THIRD_VIEW).cam_to_parent
    with RobotSelfFilter(ext, K2, padding_m=0.0) as thin, RobotSelfFilter(ext, K2, padding_m=0.02) as fat:
        for f in (thin, fat):
            f.set_joints(twin.joint_names, twin.joint_positions())
        assert np.isfinite(fat.robot_depth()).sum() > 1.15 * np.isfinite(thin.robot_depth()).sum()


def test_hand_poses_report_palms_and_closure(self_filter):
    names = robot_spec.actuated_joint_names()
    q = np.zeros(len(names))
    n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
    q[n_arm:] = robot_spec.hand_normalized_to_rad(np.array([0.0] * 6 + [1.0] * 6).reshape(2, 6)).reshape(-1)
    self_filter.set_joints(names, q)
    hands = {h.side: h for h in self_filter.hand_poses()}
    assert hands["left"].closure == pytest.approx(0.0, abs=1e-6)
    assert hands["right"].closure == pytest.approx(1.0, abs=1e-6)
    assert hands["left"].position[1] > 0 > hands["right"].position[1]  # left hand on +y


def test_robot_mask_keeps_what_is_in_front_of_the_robot():
    robot = np.array([[1.0, 1.0, np.inf]])
    depth = np.array([[1.0, 0.9, 1.2]])  # on the robot, 10 cm in front of it, where no robot is drawn
    assert robot_mask(depth, robot, margin_m=0.03).tolist() == [[True, False, False]]
    with pytest.raises(ValueError, match="differ in size"):
        robot_mask(depth, robot[:, :2])
