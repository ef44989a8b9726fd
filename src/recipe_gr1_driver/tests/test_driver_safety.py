"""safety.py: limits, validation, the filter's invariants (hypothesis), watchdog, e-stop, ramp."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe_common import robot_spec
from recipe_gr1_driver.safety import (
    CommandRejected,
    EStop,
    Ramp,
    SafetyFilter,
    SafetyLimits,
    Watchdog,
    smoothstep,
)

LIMITS = SafetyLimits.from_spec("fourier", arm_margin=0.05, hand_margin=0.0, arm_velocity_scale=0.5,
                                arm_max_velocity=2.0, hand_max_velocity=3.0, max_step=0.05)
SAFETY = SafetyFilter(LIMITS, passive_names=robot_spec.hand_coupled_joint_names("fourier"))
NAMES = robot_spec.actuated_joint_names()
N = len(NAMES)


def test_limits_follow_robot_spec_with_margins_and_velocity_caps():
    spec = robot_spec.joint_limits("fourier")
    assert LIMITS.names == tuple(NAMES)
    i = NAMES.index("left_elbow_pitch_joint")
    assert LIMITS.lower[i] == pytest.approx(spec["left_elbow_pitch_joint"].lower + 0.05)
    assert LIMITS.upper[i] == pytest.approx(spec["left_elbow_pitch_joint"].upper - 0.05)
    assert LIMITS.max_velocity[i] == pytest.approx(min(5.24 * 0.5, 2.0))
    j = NAMES.index("left_wrist_pitch_joint")  # URDF 15.08 rad/s * 0.5 -> capped at 2.0
    assert LIMITS.max_velocity[j] == pytest.approx(2.0)
    k = NAMES.index("L_index_proximal_joint")  # hands: no URDF velocity -> hand_max_velocity, no margin
    assert LIMITS.max_velocity[k] == pytest.approx(3.0)
    assert LIMITS.lower[k] == pytest.approx(spec["L_index_proximal_joint"].lower)


def test_inspire_limits_differ_from_fourier():
    ins = SafetyLimits.from_spec("inspire")
    k = NAMES.index("R_index_proximal_joint")
    assert (ins.lower[k], ins.upper[k]) == pytest.approx((0.0, 1.7))


@pytest.mark.parametrize("kwargs, match", [
    ({"arm_margin": 0.7}, "arm_margin=0.7 leaves no range for left_wrist_pitch_joint"),
    ({"hand_margin": -0.1}, "hand_margin must be"),
    ({"arm_max_velocity": math.nan}, "arm_max_velocity"),
    ({"max_step": 0.0}, "max_step"),
])
def test_bad_limit_settings_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SafetyLimits.from_spec("fourier", **kwargs)


def test_validate_accepts_partial_commands_in_any_order():
    idx, vals = SAFETY.validate(["R_pinky_proximal_joint", "left_elbow_pitch_joint"], [-0.5, 1.0])
    assert list(idx) == [NAMES.index("R_pinky_proximal_joint"), NAMES.index("left_elbow_pitch_joint")]
    assert list(vals) == [-0.5, 1.0]


@pytest.mark.parametrize("names, positions, match", [
    ([], [], "no joint names"),
    (["left_elbow_pitch_joint"], [], "1 names but 0 positions"),
    (["left_elbow_pitch_joint", "left_wrist_yaw_joint"], [0.1], "2 names but 1 positions"),
    (["left_elbow_joint"], [0.1], r"unknown joint names: \['left_elbow_joint'\]"),
    (["L_index_intermediate_joint"], [0.1], "coupled"),
    (["left_elbow_pitch_joint", "left_elbow_pitch_joint"], [0.1, 0.2], "duplicate"),
    (["left_elbow_pitch_joint", "R_ring_proximal_joint"], [0.1, math.nan],
     "non-finite.*R_ring_proximal_joint=nan"),
    (["left_elbow_pitch_joint"], [math.inf], "non-finite.*left_elbow_pitch_joint=inf"),
    ([3], [0.0], "strings"),
])
def test_validate_rejects_malformed_commands(names, positions, match):
    with pytest.raises(CommandRejected, match=match):
        SAFETY.validate(names, positions)


def test_filter_clamps_to_limits_and_rate_limits():
    cur = LIMITS.clip(np.zeros(N))
    target = cur.copy()
    i = NAMES.index("left_elbow_pitch_joint")
    target[i] = 100.0
    out = SAFETY.filter(target, cur, 0.01)
    assert out[i] == pytest.approx(cur[i] + 0.01 * LIMITS.max_velocity[i])  # velocity-limited
    out = SAFETY.filter(target, cur, 10.0)  # a stalled loop: the step cap applies
    assert out[i] == pytest.approx(cur[i] + LIMITS.max_step)
    q = cur.copy()
    for _ in range(2000):
        q = SAFETY.filter(target, q, 0.01)
    assert q[i] == pytest.approx(LIMITS.upper[i])  # settles on the limit-with-margin, never past it


def test_filter_holds_non_finite_targets_and_bad_dt():
    cur = LIMITS.clip(np.full(N, 0.1))
    target = np.full(N, np.nan)
    np.testing.assert_array_equal(SAFETY.filter(target, cur, 0.01), cur)
    np.testing.assert_array_equal(SAFETY.filter(cur + 1.0, cur, math.nan), cur)
    np.testing.assert_array_equal(SAFETY.filter(cur + 1.0, cur, -0.01), cur)
    with pytest.raises(ValueError, match="non-finite"):
        SAFETY.filter(cur, np.full(N, np.nan), 0.01)
    with pytest.raises(ValueError, match=r"\(26,\)"):
        SAFETY.filter(cur[:5], cur, 0.01)


any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite_float = st.floats(min_value=-10.0, max_value=10.0)


def _within_limits(seed: float) -> np.ndarray:
    rng = np.random.default_rng(abs(hash(seed)) % 2**32)
    return LIMITS.lower + rng.random(N) * (LIMITS.upper - LIMITS.lower)


@settings(max_examples=200, deadline=None)
@given(target=st.lists(any_float, min_size=N, max_size=N), seed=st.floats(0, 1e6),
       dt=st.one_of(any_float, st.floats(0.0, 0.2)))
def test_property_output_within_limits_and_step_bounded(target, seed, dt):
    current = _within_limits(seed)
    out = SAFETY.filter(np.array(target), current, dt)
    assert np.all(np.isfinite(out))
    assert np.all(out >= LIMITS.lower) and np.all(out <= LIMITS.upper)
    step = SAFETY.step_limits(dt)
    assert np.all(np.abs(out - current) <= step + 1e-12)
    assert np.all(step <= LIMITS.max_step)


@settings(max_examples=200, deadline=None)
@given(target=st.lists(any_float, min_size=N, max_size=N),
       current=st.lists(finite_float, min_size=N, max_size=N), dt=any_float)
def test_property_output_within_limits_for_any_finite_current(target, current, dt):
    out = SAFETY.filter(np.array(target), np.array(current), dt)
    assert np.all(out >= LIMITS.lower) and np.all(out <= LIMITS.upper)


@settings(max_examples=100, deadline=None)
@given(targets=st.lists(st.lists(any_float, min_size=N, max_size=N), min_size=1, max_size=30),
       seed=st.floats(0, 1e6))
def test_property_sequences_stay_safe(targets, seed):
    q = _within_limits(seed)
    for t in targets:
        nxt = SAFETY.filter(np.array(t), q, 0.01)
        assert np.all(np.abs(nxt - q) <= SAFETY.step_limits(0.01) + 1e-12)
        assert np.all(nxt >= LIMITS.lower) and np.all(nxt <= LIMITS.upper)
        q = nxt


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.one_of(st.sampled_from(NAMES + robot_spec.hand_coupled_joint_names()),
                                st.text(max_size=12)), max_size=30),
       positions=st.lists(any_float, max_size=30))
def test_property_validate_either_rejects_or_returns_clean_command(names, positions):
    try:
        idx, vals = SAFETY.validate(names, positions)
    except CommandRejected as exc:
        assert exc.reason
        return
    assert len(idx) == len(vals) == len(names) == len(set(names))
    assert np.all(np.isfinite(vals))
    assert [NAMES[i] for i in idx] == names


def test_watchdog_expires_per_joint():
    wd = Watchdog(0.5, size=3)
    assert wd.expired(0.0) and wd.age(0.0) == math.inf
    wd.feed(1.0, [0, 2])
    assert list(wd.alive(1.4)) == [True, False, True]
    wd.feed(1.3, [2])
    assert list(wd.alive(1.6)) == [False, False, True]
    assert not wd.expired(1.6) and wd.expired(1.81)
    assert wd.age(1.6) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="timeout"):
        Watchdog(0.0)


def test_estop_latches_until_released():
    e = EStop()
    assert not e.engaged
    assert e.engage("button") and e.engaged and e.reason == "button"
    assert not e.engage("again") and e.reason == "button"  # latched: first reason kept
    assert e.release() and not e.engaged
    assert not e.release()
    assert e.engage_count == 1


def test_ramp_blends_smoothly_per_joint():
    r = Ramp(1.0, size=2)
    start = np.array([0.0, 5.0])
    r.start([0], start, now=10.0)
    target = np.array([1.0, 7.0])
    out = r.apply(target, 10.0)
    assert out[0] == pytest.approx(0.0) and out[1] == pytest.approx(7.0)  # joint 1 never ramped
    assert r.apply(target, 10.5)[0] == pytest.approx(0.5)
    assert r.apply(target, 10.25)[0] == pytest.approx(smoothstep(np.array(0.25)))
    assert r.apply(target, 11.0)[0] == pytest.approx(1.0)
    assert list(r.active(10.5)) == [True, False]
    xs = np.linspace(0, 1, 101)
    assert np.all(np.diff(smoothstep(xs)) >= 0) and smoothstep(np.array(2.0)) == 1.0


def test_ramp_eases_in_the_initial_gap_but_passes_a_moving_target_through():
    """A source that starts where the robot is and moves on is not slowed down by the ramp."""
    r = Ramp(1.0, size=1)
    r.start([0], np.array([0.0]), now=0.0)
    ts = np.linspace(0.0, 1.0, 11)
    moving = [r.apply(np.array([0.5 * t]), t)[0] for t in ts]  # target moves at 0.5 rad/s from the held pose
    np.testing.assert_allclose(moving, 0.5 * ts, atol=1e-12)
    r.start([0], np.array([0.0]), now=2.0)
    gap = [r.apply(np.array([1.0 + 0.5 * (t - 2.0)]), t)[0] for t in ts + 2.0]  # 1 rad away, moving
    assert gap[0] == pytest.approx(0.0) and gap[-1] == pytest.approx(1.5)
    assert np.all(np.diff(gap) >= 0)
