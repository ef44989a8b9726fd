"""controller.py: sources, ramps, watchdog hold and e-stop on a simulated clock (no ROS)."""

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_gr1_driver.controller import SafetyController
from recipe_gr1_driver.safety import CommandRejected, SafetyFilter, SafetyLimits, smoothstep

NAMES = robot_spec.actuated_joint_names()
ELBOW = "left_elbow_pitch_joint"
IE = NAMES.index(ELBOW)
DT = 0.01


def make(watchdog=0.5, ramp=1.0, max_step=0.05):
    limits = SafetyLimits.from_spec("fourier", max_step=max_step)
    ctl = SafetyController(SafetyFilter(limits, robot_spec.hand_coupled_joint_names()), watchdog, ramp)
    home = limits.clip(np.zeros(len(NAMES)))
    ctl.reset(home)
    return ctl, limits, home


def run(ctl, t0, seconds, cmd=None, source="a"):
    """Tick at 100 Hz, optionally streaming `cmd` (names, positions) every tick; returns (t, outputs)."""
    outs = []
    t = t0
    for _ in range(round(seconds / DT)):
        t += DT
        if cmd is not None:
            ctl.submit(cmd[0], cmd[1], source, t)
        outs.append(ctl.update(t))
    return t, np.array(outs)


def test_not_initialised_rejects_and_update_raises():
    limits = SafetyLimits.from_spec("fourier")
    ctl = SafetyController(SafetyFilter(limits), 0.5, 1.0)
    with pytest.raises(CommandRejected, match="not initialised"):
        ctl.submit([ELBOW], [0.1], "a", 0.0)
    with pytest.raises(RuntimeError):
        ctl.update(0.0)
    with pytest.raises(ValueError, match="finite"):
        ctl.reset(np.full(len(NAMES), np.nan))


def test_reset_clips_measured_pose_into_safe_window():
    ctl, limits, _ = make()
    q = np.zeros(len(NAMES))
    q[IE] = 5.0
    hold = ctl.reset(q)
    assert hold[IE] == pytest.approx(limits.upper[IE])


def test_new_source_ramps_smoothly_then_tracks():
    ctl, _limits, home = make(ramp=1.0)
    _t, out = run(ctl, 0.0, 2.0, ([ELBOW], [1.0]))
    elbow = out[:, IE]
    # smoothstep ramp: after 0.1 s it has covered ~2.3% of the way (0.2 rad at the velocity limit)
    assert elbow[9] - home[IE] == pytest.approx(smoothstep(np.array(0.09)) * 1.0, abs=1e-9)
    assert elbow[-1] == pytest.approx(1.0)
    assert np.all(np.diff(elbow) >= -1e-12)
    # other joints untouched by a partial command
    np.testing.assert_allclose(np.delete(out[-1], IE), np.delete(home, IE))


def test_same_source_does_not_ramp_but_second_source_does():
    ctl, limits, _ = make(ramp=1.0)
    t, _ = run(ctl, 0.0, 1.5, ([ELBOW], [0.5]))
    t, out = run(ctl, t, 0.05, ([ELBOW], [0.8]))  # same source: rate-limited only
    assert out[0, IE] - 0.5 == pytest.approx(DT * limits.max_velocity[IE])
    t, out = run(ctl, t, 0.5, ([ELBOW], [0.0]), source="b")  # a new source: ramp from held pose
    first_steps = np.abs(np.diff(out[:5, IE]))
    assert np.all(first_steps < DT * limits.max_velocity[IE] * 0.5)


def test_out_of_limit_and_fast_targets_are_clamped_and_rate_limited():
    ctl, limits, home = make(ramp=0.0)
    _t, out = run(ctl, 0.0, 3.0, ([ELBOW, "L_thumb_proximal_pitch_joint"], [50.0, -50.0]))
    steps = np.abs(np.diff(np.vstack([home, out]), axis=0))
    assert np.all(steps <= np.minimum(limits.max_velocity * DT, limits.max_step) + 1e-12)
    assert out[-1, IE] == pytest.approx(limits.upper[IE])
    k = NAMES.index("L_thumb_proximal_pitch_joint")
    assert out[-1, k] == pytest.approx(limits.lower[k])
    assert np.all(out >= limits.lower) and np.all(out <= limits.upper)


def test_rejected_commands_change_nothing_and_are_counted():
    ctl, _, home = make()
    t, _ = run(ctl, 0.0, 0.2)
    for names, pos in [([ELBOW], [np.nan]), ([ELBOW, "x"], [0.1, 0.2]), ([ELBOW], [0.1, 0.2])]:
        with pytest.raises(CommandRejected):
            ctl.submit(names, pos, "a", t)
    t, out = run(ctl, t, 0.3)
    np.testing.assert_allclose(out, np.tile(home, (len(out), 1)))
    st = ctl.status(t)
    assert st.rejected_count == 3 and st.accepted_count == 0 and "positions" in st.last_rejection


def test_watchdog_freezes_joint_mid_motion_and_next_command_ramps():
    ctl, limits, _home = make(watchdog=0.3, ramp=0.0)
    t, out = run(ctl, 0.0, 0.4, ([ELBOW], [2.0]))  # moving at the velocity limit when it stops
    moving_at = out[-1, IE]
    assert moving_at < 2.0 - 0.1
    t, out = run(ctl, t, 1.0)  # no more commands
    expiry = round(0.3 / DT)
    assert out[expiry + 1:, IE] == pytest.approx(np.full(len(out) - expiry - 1, out[expiry + 1, IE]))
    assert out[-1, IE] < moving_at + 0.3 * limits.max_velocity[IE] + 1e-9  # stopped within the timeout
    st = ctl.status(t)
    assert st.alive_joints == 0 and st.command_age_s > 0.3


def test_estop_holds_then_release_ramps_to_live_target():
    ctl, _limits, _home = make(watchdog=0.5, ramp=0.5)
    t, out = run(ctl, 0.0, 0.5, ([ELBOW], [1.0]))
    ctl.engage_estop("test")
    held = out[-1].copy()
    t, out = run(ctl, t, 1.0, ([ELBOW], [1.5]))  # commands keep coming but nothing moves
    np.testing.assert_array_equal(out, np.tile(held, (len(out), 1)))
    assert ctl.status(t).estop_engaged and ctl.status(t).estop_reason == "test"
    assert ctl.release_estop(t)
    t, out = run(ctl, t, 1.5, ([ELBOW], [1.5]))
    assert np.abs(out[0, IE] - held[IE]) < 1e-3  # ramp starts at the held pose
    assert out[-1, IE] == pytest.approx(1.5)


def test_estop_release_after_stream_stopped_keeps_holding():
    ctl, _, _ = make(watchdog=0.3, ramp=0.2)
    t, out = run(ctl, 0.0, 0.5, ([ELBOW], [1.0]))
    ctl.engage_estop("x")
    t, _ = run(ctl, t, 1.0)  # stream stops during the e-stop
    held = ctl.update(t)
    ctl.release_estop(t)
    t, out = run(ctl, t, 0.5)
    np.testing.assert_allclose(out, np.tile(held, (len(out), 1)))
