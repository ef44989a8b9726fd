"""The driver's command path as an object, and the env running a policy's targets through it."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_common.paths import config_path
from recipe_gr1_driver.command_path import DriverCommandPath, driver_command_paths
from recipe_gr1_driver.config import load_driver_config

pytest.importorskip("recipe_sim.vec_env", reason="recipe_sim not available")
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.vec_env import RecipeVecEnv


def test_a_jump_is_ramped_in_and_rate_limited_as_the_driver_does():
    cfg = load_driver_config(config_path("driver.yaml"))
    path = DriverCommandPath(cfg)
    q0 = np.zeros(robot_spec.ACTION_DIM)
    path.reset(q0)
    target = q0.copy()
    target[0] = 0.5  # a 0.5 rad jump of the first arm joint
    out = []
    for k in range(400):  # 100 Hz control ticks, the target resent at 10 Hz (the watchdog holds otherwise)
        if k % 10 == 0:
            path.submit(target, 0.01 * k)
        out.append(path.update(0.01 * k)[0])
    steps = np.abs(np.diff(out))
    assert steps.max() <= cfg.max_step + 1e-9 and steps.max() <= cfg.arm_max_velocity * 0.01 + 1e-9
    assert out[10] < 0.1  # the start ramp eases the gap in
    assert out[-1] == pytest.approx(0.5, abs=1e-6)  # and arrives


def test_the_env_applies_what_the_path_commands_and_resets_it_with_the_robot():
    env = RecipeVecEnv("grasp_reach", 2, objects=["can_medium"], seed=0,
                       randomization=RandomizationConfig.disabled())
    ready = env.ready_q.copy()
    far = robot_spec.joint_targets_to_action(ready, env.hand)
    env.set_command_path(driver_command_paths())
    env.step(np.tile(far, (2, 1)).astype(np.float32))  # set mid-episode: the paths hold the current targets
    env.reset()
    far[0] += 0.6
    actions = np.tile(far, (2, 1)).astype(np.float32)
    env.step(actions)
    moved = env.physics.ctrl[:, env.index.actuator_ids][:, 0] - ready[0]
    # direct: the actuator target jumps 0.6 rad at once; through the driver: a ramp and a velocity cap
    assert 0.0 < moved.max() < 0.1
    env.teleport(np.arange(2), q=np.tile(ready, (2, 1)))
    assert np.allclose(env._command_paths[0].controller.update(0.0), ready)  # holds the teleported pose
    env.set_command_path(None)
    env.step(actions)
    direct = env.physics.ctrl[:, env.index.actuator_ids][:, 0] - ready[0]
    assert direct.max() == pytest.approx(0.6)  # the acting arm's (the idle one holds its pose)
