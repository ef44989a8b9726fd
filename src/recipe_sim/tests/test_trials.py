"""Trials on the twin: spawns like an env reset, and the verdict of the training success detector."""

import mujoco
import numpy as np
import pytest

from recipe_sim.experts import make_expert
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.trials import TwinTrials
from recipe_sim.twin import SimTwin
from recipe_sim.vec_env import RecipeVecEnv

OBJECT = "can_medium"


@pytest.fixture(scope="module")
def twin():
    tw = SimTwin(object_name=OBJECT)
    yield tw
    tw.close()


def test_draws_are_seeded_and_inside_the_spawn_region(twin):
    trials = TwinTrials(twin, "grasp_reach")
    a, b, c = trials.draw(7), trials.draw(7), trials.draw(8)
    np.testing.assert_array_equal(a.object_pose, b.object_pose)
    assert not np.allclose(a.object_pose, c.object_pose)
    spawn, jitter = trials.task_cfg.spawn, trials.rand.object_init_pos.range
    for seed in range(20):
        p = trials.draw(seed).object_pose
        assert spawn.x[0] + jitter[0] - 1e-9 <= p[0] <= spawn.x[1] + jitter[1] + 1e-9
        assert spawn.y[0] + jitter[0] - 1e-9 <= p[1] <= spawn.y[1] + jitter[1] + 1e-9
        assert p[2] == pytest.approx(trials.rest_z + 0.001)
        assert np.linalg.norm(p[3:]) == pytest.approx(1.0)


def test_start_places_the_object_and_picks_goal_and_hand_from_the_state(twin):
    trials = TwinTrials(twin, "grasp_reach")
    twin.reset(trials.ready_q)
    setup = trials.draw(3)
    trials.start(setup)
    np.testing.assert_allclose(twin.object_position(), setup.object_pose[:3], atol=1e-9)
    side = int(trials.task.side[0])
    assert side == (0 if setup.object_pose[1] >= 0 else 1)  # closer hand at the mirror-symmetric ready pose
    goal = trials.goal
    assert goal is not None and (goal[1] >= 0) == (side == 0)
    assert trials.final_goal is None  # only handover has a second goal
    assert trials.judge().state == "running"


def test_hands_low_means_waypoints_first(twin):
    trials = TwinTrials(twin, "grasp_reach")
    twin.reset()  # arms hanging: a straight move would drive the hands into the table edge
    assert len(trials.path_to_ready()) == 3
    twin.reset(trials.ready_q)
    path = trials.path_to_ready()
    assert len(path) == 1 and np.array_equal(path[0], trials.ready_q)


def test_the_twin_judge_agrees_with_the_env_on_a_scripted_grasp(twin):
    """Replay an env episode's states into the twin: the verdict flips at the same step."""
    env = RecipeVecEnv("grasp_reach", 1, objects=[OBJECT], seed=3,
                       randomization=RandomizationConfig.disabled())
    expert = make_expert(env)
    states, success_step = [], None
    for k in range(60):
        env.step(expert(None))
        states.append((env.physics.qpos[0].copy(), env.physics.qvel[0].copy()))
        if env._ep_success[0] and success_step is None:
            success_step = k + 1
    assert success_step is not None, "the scripted grasp should succeed on this nominal episode"

    trials = TwinTrials(twin, "grasp_reach")
    trials.start(trials.draw(0))
    trials.task.goal[0] = env.task.goal[0]
    trials.task.side[0] = env.task.side[0]
    trials.task.anchor[0] = env.task.anchor[0]
    verdicts = []
    for qpos, qvel in states:
        twin.data.qpos[:] = qpos
        twin.data.qvel[:] = qvel
        mujoco.mj_forward(twin.model, twin.data)
        verdicts.append(trials.judge())
    first = next(i + 1 for i, v in enumerate(verdicts) if v.state == "success")
    assert first == success_step
    assert verdicts[-1].state == "success" and verdicts[-1].success_step == success_step
    env.close()


def test_the_twin_moves_as_the_env_does_under_the_same_targets(twin):
    """Deploy and its sim comparison share one physics: the env's commanded targets of a scripted grasp,
    replayed into the twin once per policy step, give the same joints and object (a deploy-vs-sim gap is
    then in what is commanded and when, not in how the robot moves)."""
    from recipe_common import robot_spec

    env = RecipeVecEnv("grasp_reach", 1, objects=[OBJECT], seed=5,
                       randomization=RandomizationConfig.disabled())
    try:
        env.reset()
        q0 = env.physics.qpos[0].copy()
        twin.data.qpos[:] = q0
        twin.data.qvel[:] = 0.0
        mujoco.mj_forward(twin.model, twin.data)
        expert = make_expert(env)
        for _ in range(25):
            action = expert(None)
            env.step(action)
            twin.set_targets(robot_spec.action_to_joint_targets(np.asarray(action[0], np.float64), env.hand))
            twin.advance(env.dt)
        # contacts make tiny differences grow (thread count, summation order): mm and mrad, not more
        np.testing.assert_allclose(twin.data.qpos, env.physics.qpos[0], atol=5e-3)
    finally:
        env.close()


def test_time_out_and_final_verdicts_stay(twin):
    trials = TwinTrials(twin, "grasp_reach")
    twin.reset(trials.ready_q)
    trials.start(trials.draw(1))
    for _ in range(trials.task_cfg.episode_length):
        v = trials.judge()
    assert v.state == "timeout" and v.final
    assert trials.judge() == v


def test_handover_trials_give_both_goals_and_sim_episodes_can_take_them():
    """A handover trial reports the transfer point (the goal the policy starts with) and the final goal; a
    closed-loop sim env given that episode (HandoverTask.set_episode) has the same direction, goals and
    per-hand stickers, so deploy and sim are compared on the same episodes."""
    import torch

    tw = SimTwin(object_name="handover_block")
    env = RecipeVecEnv("handover", 1, objects=["handover_block"], seed=0,
                       randomization=RandomizationConfig.disabled())
    try:
        trials = TwinTrials(tw, "handover")
        tw.reset(trials.ready_q)
        trials.start(trials.draw(5))
        task = trials.task
        np.testing.assert_allclose(trials.goal, task.transfer_goal[0].numpy())
        np.testing.assert_allclose(trials.final_goal, task.final_goal[0].numpy())
        assert np.linalg.norm(trials.goal - trials.final_goal) > 0.05
        env.reset()
        other = 1 - int(task.side_a[0])
        env.task.set_episode(0, other, task.final_goal[0], task.transfer_goal[0])  # something else first
        env.task.set_episode(0, int(task.side_a[0]), task.transfer_goal[0], task.final_goal[0])
        assert int(env.task.side_a[0]) == int(task.side_a[0]) and int(env.task.progress[0]) == 0
        assert torch.equal(env.task.goal[0], task.transfer_goal[0])
        assert torch.equal(env.task.stickers_left[0], task.stickers_left[0])
        assert torch.equal(env.task.stickers_right[0], task.stickers_right[0])
    finally:
        env.close()
        tw.close()
