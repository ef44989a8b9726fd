"""The box-turn benchmark (benchmarks/box_lift_turns.py): the peak yaw, what counts as turned, the split."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture(scope="module")
def b(load_benchmark):
    return load_benchmark("box_lift_turns")


def test_peak_yaw_is_where_the_box_is_widest_along_the_squeeze(b):
    hx, hy = 0.09, 0.17  # the wide box's half sizes (config/objects.yaml)
    peak = b.peak_width_yaw(hx, hy)  # the expert's (experts/box_lift.py), which the bench uses
    yaws = np.linspace(0.0, np.pi / 2, 2001)
    width = hx * np.abs(np.sin(yaws)) + hy * np.abs(np.cos(yaws))
    assert peak == pytest.approx(yaws[np.argmax(width)], abs=1e-3)
    assert peak == pytest.approx(0.487, abs=1e-3)


def test_turned_counts_quarter_turns_not_half_turns(b):
    start = np.array([0.6, 0.6, -0.6, 0.1, 0.7])
    end = np.array([1.5, 0.6 + np.pi, 1.6, 0.3, 0.7 - np.pi / 2])
    assert b.turned(start, end).tolist() == [True, False, True, False, True]


def test_split_separates_the_spawns_beyond_the_peak(b):
    success = np.array([True, False, True, True])
    start = np.array([0.1, 0.6, -0.7, 0.2])
    end = np.array([0.0, 1.6, -0.1, 0.1])
    r = b.split(success, start, end, peak=0.5)
    assert r["within_peak"] == {"episodes": 2, "success": 1.0, "turned": 0.0}
    assert r["beyond_peak"] == {"episodes": 2, "success": 0.5, "turned": 0.5}


def test_a_short_expert_run_reports_every_box(b, tmp_path):
    r = b.run_box("lift_box_wide", 2, 3, None, None, task_overrides={"episode_length": 4})
    assert r["episodes"] == 2 and r["within_peak"]["episodes"] + r["beyond_peak"]["episodes"] == 2
    assert r["at_success"] == {"successes": 0, "both_hands_touching": None, "table_touching": None}
    assert r["failures"] == {"held": 0, "not_lifted": 2, "tipped": 0, "brief": 0}  # 3 steps: nothing lifted


def test_longest_run_counts_consecutive_steps_per_episode(b):
    mask = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    assert b.longest_run(mask).tolist() == [2, 3, 2]


def test_failures_are_sorted_by_what_happened_to_the_box(b):
    """Five episodes over four steps, hold 2: one success, then one failure of each kind."""
    t, f = True, False
    success = np.array([t, f, f, f, f])
    # columns: success, held (up, clear, both hands, 2 steps), never up, up only tipped, up clear, 1 hand
    lifted = np.array([[t, t, f, t, t], [t, t, f, t, t], [f, f, f, t, t], [f, f, f, f, f]])
    clear = np.array([[t, t, t, f, t], [t, t, t, f, t], [t, t, t, f, t], [t, t, t, t, t]])
    both = np.array([[t, t, t, t, f], [t, t, t, t, t], [t, f, t, t, f], [t, t, t, t, t]])
    assert b.failure_kinds(success, lifted, clear, both, hold_steps=2) == {
        "held": 1, "not_lifted": 1, "tipped": 1, "brief": 1}
    with pytest.raises(ValueError, match=r"both_touching has shape \(\)"):  # not a count in its place
        b.failure_kinds(success, lifted, clear, np.array(3), hold_steps=2)


def test_geoms_touching_the_box_are_told_apart_by_hand(b):
    index = SimpleNamespace(hand_geoms=np.array([10, 11, 20, 21]), table_geom=5, object_geom=7)

    def contacts(*pairs):
        found = [SimpleNamespace(geom1=g1, geom2=g2) for g1, g2 in pairs]
        return SimpleNamespace(contact=found, ncon=len(found))

    assert b.touching(None, contacts((7, 11), (21, 7), (7, 5)), index) == {"left", "right", "table"}
    assert b.touching(None, contacts((10, 11), (7, 20)), index) == {"right"}  # hand on hand is not the box


def test_contacts_see_the_table_under_a_box_at_reset(b):
    """In the real model, a step after reset the box stands on the table and no hand touches it yet."""
    import mujoco

    from recipe_sim.experts import make_expert
    from recipe_sim.vec_env import RecipeVecEnv

    env = RecipeVecEnv("box_lift", 1, objects=["lift_box"], seed=0)
    try:
        obs = env.reset()
        env.step(make_expert(env)(obs))
        m, d = env.physics.models[0], env.physics.scratch_data(0)
        mujoco.mj_collision(m, d)
        assert b.touching(m, d, env.index) == {"table"}
    finally:
        env.close()
