"""Calibration sequences are safe (limits, velocity, clearance), smooth, home-to-home and deterministic."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recipe_autotune import calibration
from recipe_autotune.calibration import UnsafeMotionError, check_safe, generate_sequences, home_pose, ramp
from recipe_autotune.config import load_config
from recipe_common import robot_spec

HAND = "fourier"


@pytest.fixture(scope="module")
def cal():
    return replace(load_config().calibration, duration_s=12.0, num_sequences=3)


def test_shape_limits_velocity_and_home(cal):
    seq = generate_sequences(cal, HAND, seed=3)
    steps = round(cal.duration_s * cal.command_rate_hz)
    assert seq.shape == (3, steps, robot_spec.ACTION_DIM)
    lo, hi = robot_spec.actuated_limits(HAND)
    assert np.all(seq >= lo + cal.margin_rad - 1e-9) and np.all(seq <= hi - cal.margin_rad + 1e-9)
    speed = np.abs(np.diff(seq, axis=1)).max(axis=(0, 1)) * cal.command_rate_hz
    assert np.all(speed <= calibration.velocity_bounds(cal, HAND) * (1 + 1e-9))
    home = home_pose(cal, HAND)
    assert np.allclose(seq[:, 0], home) and np.allclose(seq[:, -1], home)
    # the last settle_s seconds hold home so the robot comes to rest there
    settle = round(cal.settle_s * cal.command_rate_hz)
    assert np.allclose(seq[:, -settle:], home)


def test_every_joint_is_excited_and_motion_is_smooth(cal):
    seq = generate_sequences(cal, HAND, seed=0)
    spread = seq.max(axis=1) - seq.min(axis=1)
    assert np.all(spread > 0.05), "every actuated joint must move in every sequence"
    # smooth: the second difference is small relative to the first (no target jumps)
    acc = np.abs(np.diff(seq, n=2, axis=1)).max()
    vel = np.abs(np.diff(seq, axis=1)).max()
    assert acc < vel


def test_deterministic_per_seed_and_different_across_seeds(cal):
    a = generate_sequences(cal, HAND, seed=7)
    b = generate_sequences(cal, HAND, seed=7)
    c = generate_sequences(cal, HAND, seed=8)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    # sequence k does not depend on how many sequences are asked for
    assert np.array_equal(generate_sequences(cal, HAND, seed=7, num_sequences=1)[0], a[0])


def test_home_is_clipped_into_the_margin(cal):
    wild = replace(cal, home={"left_elbow_pitch_joint": 10.0})
    home = home_pose(wild, HAND)
    _, hi = robot_spec.actuated_limits(HAND)
    j = robot_spec.actuated_joint_names().index("left_elbow_pitch_joint")
    assert home[j] == pytest.approx(hi[j] - cal.margin_rad)


def test_check_safe_rejects_out_of_limit_fast_and_nan(cal):
    seq = generate_sequences(cal, HAND, seed=0, num_sequences=1)
    bad = seq.copy()
    bad[0, 10, 3] = 5.0
    with pytest.raises(UnsafeMotionError, match="left_elbow_pitch_joint"):
        check_safe(bad, cal, HAND)
    fast = seq.copy()
    fast[0, 10:, 0] -= 0.3  # a 0.3 rad jump in one 0.1 s step = 3 rad/s > 0.3 * 6.28 rad/s
    with pytest.raises(UnsafeMotionError, match="rad/s"):
        check_safe(fast, cal, HAND)
    nan = seq.copy()
    nan[0, 5, 5] = np.nan
    with pytest.raises(UnsafeMotionError, match="NaN"):
        check_safe(nan, cal, HAND)


def test_ramp_is_smooth_bounded_and_ends_at_goal():
    start = np.zeros(26)
    goal = np.linspace(-0.5, 0.5, 26)
    path = ramp(start, goal, max_velocity=0.3, rate_hz=10.0)
    assert np.allclose(path[0], start) and np.allclose(path[-1], goal)
    assert np.abs(np.diff(path, axis=0)).max() * 10.0 <= 0.3 + 1e-9
    with pytest.raises(ValueError, match="shape"):
        ramp(np.zeros(26), np.zeros(3), 0.3, 10.0)


def test_clearance_checker_keeps_the_default_motion_off_table_body_and_other_hand(cal):
    from recipe_autotune.clearance import ClearanceChecker

    checker = ClearanceChecker(HAND, margin=cal.clearance_margin_m)
    home = home_pose(cal, HAND)
    assert checker.contacts(home[None]) == [], "the home pose itself must be clear"
    seq = generate_sequences(cal, HAND, seed=1, clearance=checker)
    for k in range(len(seq)):
        assert checker.contacts(seq[k]) == []
    check_safe(seq, cal, HAND)
    # a pose with the hands pushed into the table is found and named
    table_pose = np.zeros(robot_spec.ACTION_DIM)
    names = robot_spec.actuated_joint_names()
    for side in ("left", "right"):
        table_pose[names.index(f"{side}_elbow_pitch_joint")] = -0.8  # forearm forward, fingers into the top
    found = checker.contacts(table_pose[None])
    assert found and any("world" in (c.body1, c.body2) for c in found)


def test_approach_from_arms_hanging_goes_around_the_table(cal):
    from recipe_autotune.clearance import ClearanceChecker, approach_path

    checker = ClearanceChecker(HAND, margin=cal.clearance_margin_m)
    home = home_pose(cal, HAND)
    hanging = np.zeros(robot_spec.ACTION_DIM)  # how the twin (and the robot) starts
    assert checker.contacts(ramp(hanging, home, 1.0, 10.0)), "the straight move should hit the table"
    path = approach_path(hanging, home, checker, cal.approach_waypoints, 1.0, 10.0)
    assert checker.contacts(path) == []
    assert np.allclose(path[0], hanging) and np.allclose(path[-1], home)
    assert np.abs(np.diff(path, axis=0)).max() <= 0.1 + 1e-9  # 1 rad/s at 10 Hz
    # near home the straight move is used
    near = home + 0.02
    assert len(approach_path(near, home, checker, cal.approach_waypoints, 1.0, 10.0)) == 2
    with pytest.raises(RuntimeError, match="no clear path"):
        approach_path(hanging, home, checker, [], 1.0, 10.0)
