"""Scripted disturbances (poke, pull, push, drag): when they act, which way, and that they move the object."""

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_sim.disturbances import KINDS, MAX_ACCEL, SPECS, ScriptedDisturbance

DT = 0.1


def _run(kind, steps=40, obj=None, palms=None, mass=0.2, seed=0):
    d = ScriptedDisturbance(kind, 3, DT, np.random.default_rng(seed))
    obj = np.tile([0.3, 0.0, 0.8], (3, 1)) if obj is None else obj
    palms = np.tile([[0.3, 0.1, 0.8], [0.3, -0.3, 0.8]], (3, 1, 1)) if palms is None else palms
    out = [d.step(np.full(3, s), obj, np.zeros((3, 3)), palms, np.full(3, mass)) for s in range(steps)]
    return d, np.array([f for f, _ in out]), np.array([t for _, t in out])


@pytest.mark.parametrize("kind", KINDS)
def test_one_disturbance_per_episode_for_its_duration(kind):
    d, force, _ = _run(kind, steps=80)
    on = np.linalg.norm(force, axis=-1) > 0  # (steps, envs)
    n_steps = round(SPECS[kind].duration_s / DT)
    for e in range(3):
        steps = np.flatnonzero(on[:, e])
        assert len(steps) == n_steps and np.all(np.diff(steps) == 1)
        assert 0.5 - 1e-9 <= steps[0] * DT <= 5.0 + 1e-9  # inside the start window
    assert d.hits.tolist() == [1, 1, 1]
    d.reset(np.array([1]))
    assert d.hits.tolist() == [1, 1, 1]  # a reset only redraws


def test_poke_is_a_jab_with_torque_scaled_by_mass():
    _, f_light, _ = _run("poke", mass=0.1)
    _, f_heavy, torque = _run("poke", mass=0.4)
    peak = lambda f: np.linalg.norm(f, axis=-1).max()  # noqa: E731
    assert peak(f_heavy) == pytest.approx(4 * peak(f_light)) and peak(f_light) == pytest.approx(0.1 * 15.0)
    hit = np.linalg.norm(f_heavy, axis=-1) > 0
    assert np.allclose(torque[hit], np.cross([0, 0, SPECS["poke"].lever_m], f_heavy[hit]))
    assert np.all(f_heavy[..., 2] == 0)


@pytest.mark.parametrize("kind", ["push", "pull", "drag"])
def test_push_pull_drag_move_the_object_at_a_steady_speed_with_a_capped_force(kind):
    d, force, _ = _run(kind, mass=1.0)
    on = np.linalg.norm(force, axis=-1) > 0
    lo, hi = SPECS[kind].distance_m
    travel = np.linalg.norm(d.velocity, axis=-1) * SPECS[kind].duration_s
    assert np.all((travel >= lo - 1e-9) & (travel <= hi + 1e-9)) and np.all(d.velocity[:, 2] == 0)
    assert np.linalg.norm(force[on], axis=-1).max() <= MAX_ACCEL + 1e-9
    assert np.all(force[..., 2] == 0)
    if kind == "pull":  # away from the nearer palm (the left one, at +y)
        heading = d.velocity[:, :2] / np.linalg.norm(d.velocity[:, :2], axis=-1, keepdims=True)
        np.testing.assert_allclose(heading, [[0, -1]] * 3, atol=1e-12)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown disturbance 'kick'"):
        ScriptedDisturbance("kick", 1, DT, np.random.default_rng(0))


def test_a_push_moves_the_object_in_the_env_and_nothing_moves_it_otherwise():
    from recipe_sim.randomization import RandomizationConfig
    from recipe_sim.vec_env import RecipeVecEnv

    moved = {}
    for kind in (None, "push", "drag"):
        env = RecipeVecEnv("grasp_reach", 2, objects=["can_medium"], seed=0,
                           randomization=RandomizationConfig.disabled())
        try:
            env.reset()
            env.set_disturbance(kind, seed=1)
            if kind is not None:
                env._disturbance.start_step[:] = 2  # act early in this short test
            hold = np.tile(robot_spec.joint_targets_to_action(env.ready_q), (2, 1))
            start = env.physics.qpos[:, env.index.object_qpos_adr: env.index.object_qpos_adr + 2].copy()
            for _ in range(12):
                env.step(hold)
            assert env.episode_length_buf.tolist() == [12, 12]  # no episode ended (and reset) on the way
            end = env.physics.qpos[:, env.index.object_qpos_adr: env.index.object_qpos_adr + 2]
            moved[kind] = np.linalg.norm(end - start, axis=-1)
        finally:
            env.close()
    assert np.all(moved[None] < 0.005)
    assert np.all(moved["push"] > 0.04) and np.all(moved["drag"] > 0.06)


def test_disturbances_on_a_command_line_means_the_four_in_place():
    from recipe_sim.disturbances import CONDITIONS, expand_conditions

    assert expand_conditions(["nominal", "disturbances", "pushes"]) == ["nominal", *CONDITIONS, "pushes"]
    assert expand_conditions(["disturb-poke", "disturbances"]) == list(CONDITIONS)
