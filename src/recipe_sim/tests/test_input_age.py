"""eval_generalist's InputAge: the policy sees the object position (and depth) as old as the stack delivers
them, while the joint positions stay current; a fake env and policy, no physics."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recipe_common import robot_spec
from recipe_policy.interface import PolicySpec
from recipe_policy.runtime import RuntimeConfig
from recipe_sim.distill.eval_generalist import ChunkController, InputAge

OBJ = slice(robot_spec.ACTION_DIM, robot_spec.ACTION_DIM + 3)


class _Recorder:
    spec = PolicySpec(kind="specialist", task="grasp_reach", hand="fourier", objects=("can_medium",),
                      has_goal=True, uses_depth=False, uses_object_pos=True, n_obs_steps=1, action_horizon=1,
                      action_dt=0.1, inference_period=0.1, depth=None)

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict_batch(self, states: np.ndarray) -> np.ndarray:
        self.seen.append(states.copy())
        return np.tile(robot_spec.joint_targets_to_action(np.zeros(robot_spec.ACTION_DIM)), (len(states), 1))

    def reset(self) -> None:
        pass


def _env(n: int) -> SimpleNamespace:
    return SimpleNamespace(num_envs=n, dt=0.1, ready_q=np.zeros(robot_spec.ACTION_DIM), hand="fourier",
                           episode_length_buf=torch.zeros(n, dtype=torch.long))


def _obs(step: int, n: int) -> dict:
    s = np.zeros((n, robot_spec.ACTION_DIM + 6), dtype=np.float32)
    s[:, 0] = step  # a joint position: always current
    s[:, OBJ] = step  # the object position: aged
    return {"policy": torch.as_tensor(s)}


@pytest.mark.parametrize("object_s, expect", [(0.0, [0, 1, 2, 3, 4]), (0.2, [0, 0, 0, 1, 2])])
def test_the_object_position_is_as_old_as_asked_and_joints_stay_current(object_s, expect):
    env, policy = _env(2), _Recorder()
    ctl = ChunkController(env, policy, RuntimeConfig(), 0.05, InputAge(object_s=object_s))
    for k in range(5):
        env.episode_length_buf[:] = k
        ctl(_obs(k, 2))
    assert [float(s[0, 0]) for s in policy.seen] == [0, 1, 2, 3, 4]
    assert [float(s[0, OBJ][0]) for s in policy.seen] == expect
    # a new episode (the env reset itself) starts a new history: no position from the last episode
    env.episode_length_buf[:] = 0
    ctl(_obs(10, 2))
    assert float(policy.seen[-1][0, OBJ][0]) == 10


def test_negative_ages_are_refused():
    with pytest.raises(ValueError, match="input ages"):
        InputAge(depth_s=-0.1)
    assert InputAge(0.1, 0.25).steps(0.1) == (1, 2)
