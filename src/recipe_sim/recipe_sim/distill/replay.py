"""Deterministic replay of a recorded episode: physics from its first state and controls, depth from states.

Collection (``collect``) simulates without rendering and keeps only successful episodes; each kept
episode carries what reproduces it: the object, the episode's randomization draws (``RecipeVecEnv.
episode_draws``), the full physics state right after its reset, and per step the simulator state (qpos)
and the applied controls (joint targets after noise/lag, object force). ``replay_physics`` re-simulates
from the first state and the controls and returns the qpos sequence (a test checks it equals the
recorded one bit for bit: MuJoCo is deterministic for a fixed model, state and control). ``EpisodeRenderer``
renders the head camera from recorded states, with the episode's own camera pose/FOV noise written into
its model, so depth is rendered only for kept episodes, once per policy step.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering default; read when mujoco is first imported

from collections.abc import Mapping

import mujoco
import numpy as np

from recipe_common.cameras import HEAD
from recipe_common.policy_image import PolicyImageSpec, to_policy_image
from recipe_sim.env_models import EnvModels
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.render import geom_groups
from recipe_sim.sim_batch import STATE_SPEC, BatchedPhysics, PhysicsTemplate


def _draw_row(draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One episode's draws as a one-row sample_episode result (what EnvModels.write takes)."""
    return {k: np.asarray(v, dtype=np.float64)[None] for k, v in draws.items()}


def episode_models(
    templates: Mapping[str, PhysicsTemplate],
    object_name: str,
    draws: Mapping[str, np.ndarray],
    cfg: RandomizationConfig,
    depth_camera: str | None = None,
) -> EnvModels:
    """A one-env EnvModels holding ``object_name`` with the episode's randomization written in."""
    names = list(templates)
    if object_name not in templates:
        raise KeyError(f"object {object_name!r} has no template (have {names})")
    models = EnvModels(templates, 1, depth_camera)
    models.write(0, names.index(object_name), _draw_row(draws), 0, cfg)
    return models


def replay_physics(
    templates: Mapping[str, PhysicsTemplate],
    object_name: str,
    draws: Mapping[str, np.ndarray],
    cfg: RandomizationConfig,
    init_state: np.ndarray,
    ctrl: np.ndarray,
    force: np.ndarray,
    substeps: int,
) -> np.ndarray:
    """(T, nq) qpos before each recorded step (row 0 = the initial state), re-simulated from the controls."""
    models = episode_models(templates, object_name, draws, cfg)
    ph = BatchedPhysics(models.models, templates[object_name], num_threads=1)
    if init_state.shape != (ph.nstate,):
        raise ValueError(f"init_state must have {ph.nstate} entries, got {init_state.shape}")
    ph.state[0] = init_state
    body = models.index.object_body
    out = np.empty((len(ctrl), ph.nq))
    for t in range(len(ctrl)):
        out[t] = ph.qpos[0]
        ph.ctrl[0] = ctrl[t]
        ph.xfrc[0] = 0.0
        ph.xfrc[0, body, :3] = force[t]
        ph.step(substeps)
    return out


class EpisodeRenderer:
    """Head-camera policy images of recorded states, with each episode's model (collision shapes)."""

    def __init__(
        self,
        templates: Mapping[str, PhysicsTemplate],
        spec: PolicyImageSpec | None = None,
        camera: str = HEAD,
    ) -> None:
        self.templates = dict(templates)
        self.camera = camera
        self.spec = spec or PolicyImageSpec.for_camera()
        ref = next(iter(self.templates.values()))
        self._cam_id = int(ref.index.cameras[camera])
        self._renderer = mujoco.Renderer(ref.model, self.spec.height, self.spec.width)
        self._renderer.enable_depth_rendering()
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = geom_groups(collision_only=True)
        self._option.sitegroup[:] = 0
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._cam.fixedcamid = self._cam_id
        self._data = mujoco.MjData(ref.model)
        self._k = self.spec.intrinsics()  # the nominal camera: FOV noise is a miscalibration the robot
        self._frame = np.zeros((self.spec.height, self.spec.width), np.float32)  # does not know about

    def render_episode(
        self, object_name: str, draws: Mapping[str, np.ndarray], cfg: RandomizationConfig, qpos: np.ndarray
    ) -> np.ndarray:
        """(T, H, W) float32 metres (``to_policy_image`` of each render) for the episode's recorded states."""
        m = episode_models(self.templates, object_name, draws, cfg, depth_camera=self.camera).models[0]
        d = self._data
        out = np.empty((len(qpos), self.spec.height, self.spec.width), np.float32)
        for t, q in enumerate(qpos):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_camlight(m, d)
            mujoco.mjv_updateScene(
                m, d, self._option, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._renderer.scene
            )
            self._renderer.render(out=self._frame)
            out[t] = to_policy_image(self._frame, self._k, self.spec)
        return out

    def close(self) -> None:
        self._renderer.close()


def state_qpos(model: mujoco.MjModel, state: np.ndarray) -> np.ndarray:
    """qpos part of a full physics state row."""
    d = mujoco.MjData(model)
    mujoco.mj_setState(model, d, state, STATE_SPEC)
    return d.qpos.copy()
