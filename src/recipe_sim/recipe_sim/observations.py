"""Observation groups of the vectorized env (rsl-rl TensorDict groups), as pure functions.

``policy`` (actor, what the real robot can also provide; paper: joint positions + object position):
  joint_pos (26, actuated, robot_spec order, + N(0, joint_obs_noise)) | object_pos (3, + N(0,
  object_pos_obs_noise), then the env's exponential filter of weight ``object_pos_filter`` from tasks.yaml,
  0 = off) | goal (3, only for tasks with a goal: the goal of the current stage).
  Frame lag (Table IV) repeats the previous policy frame for an env with the configured probability.
``privileged`` (critic extras, noise-free):
  joint_vel (26) | fingertips (24: left then right, thumb/index/middle/ring, xyz) | object_quat (4,
  wxyz) | object_linvel (3) | object_angvel (3, world frame) | randomization scales (6,
  randomization.PRIVILEGED_KEYS) | object_pos (3, true) | task (2: active side +1/-1/0, stage).
``depth`` (optional): (N, 1, H, W) float32 metres from the head D435 at the policy image size,
  rendered from collision shapes per env with that env's randomized camera pose and FOV.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering default; read when mujoco is first imported

import mujoco
import numpy as np
import torch

from recipe_common import robot_spec
from recipe_common.observation import policy_state
from recipe_sim.randomization import PRIVILEGED_KEYS, RandomizationConfig, apply_obs_noise
from recipe_sim.render import geom_groups
from recipe_sim.sim_batch import BatchedPhysics

PRIVILEGED_FIELDS: tuple[tuple[str, int], ...] = (
    ("joint_vel", robot_spec.ACTION_DIM),
    ("fingertips", 24),
    ("object_quat", 4),
    ("object_linvel", 3),
    ("object_angvel", 3),
    ("randomization_scales", len(PRIVILEGED_KEYS)),
    ("object_pos", 3),
    ("task", 2),
)


def policy_obs(
    q: np.ndarray,
    obj_pos: np.ndarray,
    goal: np.ndarray | None,
    cfg: RandomizationConfig,
    rng: np.random.Generator,
    noise_std: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(N, 29 or 32) float64 actor observation with the configured observation noise.

    ``noise_std`` maps a noise item's name to each env's level this episode (items with ``std_min``)."""
    levels = {} if noise_std is None else noise_std
    return policy_state(
        apply_obs_noise(q, cfg.joint_obs_noise, rng, levels.get("joint_obs_noise")),
        apply_obs_noise(obj_pos, cfg.object_pos_obs_noise, rng, levels.get("object_pos_obs_noise")),
        goal,
    )


def privileged_obs(
    qd: np.ndarray,
    tips: np.ndarray,
    obj_quat: np.ndarray,
    obj_linvel: np.ndarray,
    obj_angvel: np.ndarray,
    scales: np.ndarray,
    obj_pos: np.ndarray,
    task: np.ndarray,
) -> np.ndarray:
    n = qd.shape[0]
    return np.concatenate(
        [qd, tips.reshape(n, -1), obj_quat, obj_linvel, obj_angvel, scales, obj_pos, task], axis=1
    )


def quat_rotate_np(quat: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (N, 3) vectors by (N, 4) wxyz unit quaternions."""
    w, u = quat[:, :1], quat[:, 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def to_tensor(x: np.ndarray, device: str | torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=device)


class DepthObservations:
    """Head-camera depth for every env from one offscreen GL context.

    Each env's scene is built from its own MjModel (randomized camera pose/FOV, its object) with the
    shared renderer's scene buffer, so one context serves all envs. Cost on 2 CPU cores (Mesa
    llvmpipe, collision shapes only): about 4 ms per 84x84 frame (230-400 frames/s on a lightly loaded
    machine, measured by benchmarks/bench_env.py), one frame per env-step, so with 64 envs the depth
    image costs more than the physics. Rendering all envs as tiles of one viewport was not faster.
    """

    def __init__(self, physics: BatchedPhysics, camera: str, camera_id: int, width: int, height: int) -> None:
        model = physics.models[0]
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(f"depth image {width}x{height} exceeds the offscreen buffer")
        self.physics = physics
        self.camera = camera
        self.width, self.height = int(width), int(height)
        self._renderer = mujoco.Renderer(model, self.height, self.width)
        self._renderer.enable_depth_rendering()
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = geom_groups(collision_only=True)
        self._option.sitegroup[:] = 0
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = int(camera_id)

    def render(self, env_ids: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(N, 1, H, W) float32 metres (rows of ``env_ids`` only when given; others left as in ``out``)."""
        n = self.physics.num_envs
        if out is None:
            out = np.zeros((n, 1, self.height, self.width), dtype=np.float32)
        ids = np.arange(n) if env_ids is None else np.asarray(env_ids, dtype=int)
        for i in ids:
            data = self.physics.scratch_data(int(i))
            mujoco.mjv_updateScene(
                self.physics.models[i],
                data,
                self._option,
                None,
                self._camera,
                mujoco.mjtCatBit.mjCAT_ALL,
                self._renderer.scene,
            )
            self._renderer.render(out=out[i, 0])
        return out

    def close(self) -> None:
        self._renderer.close()
