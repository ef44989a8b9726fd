"""RecipeVecEnv: N GR1 tabletop worlds behind rsl-rl's VecEnv interface (rsl-rl-lib 5.5.1).

One policy step = ``substeps`` physics steps (default 12 x 1/120 s = 10 Hz) of every env, stepped by
``mujoco.rollout`` on ``num_threads`` threads (recipe_sim.sim_batch). Envs that finish (success,
failure, divergence, time limit) are reset inside ``step``; the observation returned for them is
the first of their new episode, as rsl-rl expects.

Action pipeline (Table IV): policy action (N, 26) in the robot_spec convention (7 absolute arm radians
per arm, 6 normalized 0..1 hand targets per hand) -> clipped -> + action noise -> action lag (an env
repeats its previous action with the configured probability) -> joint targets (robot_spec mapping,
clipped) -> the task's idle-arm hold -> position actuators. A random force on the object
(xfrc_applied, carried by rollout's control vector) follows randomization.ObjectForce.

Determinism: all randomness comes from generators spawned from ``seed``; physics is deterministic per
env (see sim_batch), so the same seed and thread count give the same rollout.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering default; read when mujoco is first imported

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from recipe_common import robot_spec
from recipe_common.observation import field_slice, policy_layout
from recipe_common.position_filter import ExponentialFilter
from recipe_sim import observations as obs_mod
from recipe_sim.env_models import EnvModels
from recipe_sim.init_states import InitStates
from recipe_sim.model.builder import substeps as default_substeps
from recipe_sim.model.params import ModelParams
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import load_catalog
from recipe_sim.randomization import (
    NOISE_ITEMS,
    PRIVILEGED_KEYS,
    LagBuffer,
    ObjectForce,
    RandomizationConfig,
    apply_action_noise,
    episode_noise_std,
    sample_episode,
)
from recipe_sim.rewards import load_reward_configs
from recipe_sim.sim_batch import BatchedPhysics, physics_template
from recipe_sim.tasks import Frame, make_task
from recipe_sim.tasks.base import rest_height, sticker_points
from recipe_sim.tasks.config import load_task_configs
from recipe_sim.tasks.poses import configured_left_palm, ready_pose

# Per finished episode: did it reach its task's demonstration criterion (StepOutcome.demo_success)? The
# filter of demo_init's expert demonstrations and of distillation's collection; "/episode/success" is the
# task's success.
DEMO_SUCCESS_LOG_KEY = "/episode/demo_success"

N_ARM = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
_OBJECT_POS = field_slice("object_pos")  # the same columns with and without a goal
SPAWN_CLEARANCE = 0.001  # m between a spawned object and the table top (no initial penetration)


class CommandPath(Protocol):
    """What stands between a policy's joint targets (26, rad) and the actuators, one per env
    (``RecipeVecEnv.set_command_path``); the driver's is ``recipe_gr1_driver.command_path``.

    ``update(t)`` may depend on time and on what was submitted, not on the robot's state between resets:
    the env computes a control period's commands before it steps the physics through them in one call."""

    def reset(self, q: np.ndarray) -> Any: ...

    def submit(self, q: np.ndarray, t: float) -> None: ...

    def update(self, t: float) -> np.ndarray: ...


class RecipeVecEnv(VecEnv):
    """Vectorized recipe task env; see the module docstring and recipe_sim.observations for the groups."""

    def __init__(
        self,
        task: str,
        num_envs: int,
        objects: Sequence[str] | None = None,
        seed: int = 0,
        randomization: RandomizationConfig | None = None,
        params: ModelParams | None = None,
        init_states: str | Path | None = None,
        depth_camera: str | None = None,
        num_threads: int = 2,
        device: str | torch.device = "cpu",
        hand: str = robot_spec.DEFAULT_HAND,
        task_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        robot_spec.get_hand(hand)
        self.hand = hand
        self.num_envs = int(num_envs)
        self.num_actions = robot_spec.ACTION_DIM
        self.device = torch.device(device)
        self.task_cfg = load_task_configs().get(task).with_overrides(task_overrides)
        self.reward_cfg = load_reward_configs()[self.task_cfg.reward_config]
        self.max_episode_length = self.task_cfg.episode_length
        self.episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.rand_cfg = RandomizationConfig.load() if randomization is None else randomization
        self.params = ModelParams.coerce(params, hand)
        templates = self._build_physics(objects, depth_camera, num_threads)
        self._make_randomness(seed)
        self._make_task(templates, init_states)
        self._allocate_buffers()
        self.depth: obs_mod.DepthObservations | None = None
        if depth_camera is not None:
            self.depth = self._make_depth(depth_camera)
        self.cfg: dict[str, Any] = self._describe(seed, num_threads, depth_camera)
        self._obs: TensorDict | None = None
        self._reset_envs(np.arange(self.num_envs))
        self._obs = self._compute_obs()

    # --- construction steps ------------------------------------------------------------------------------

    def _build_physics(self, objects: Sequence[str] | None, depth_camera: str | None,
                       num_threads: int) -> dict[str, Any]:
        """The objects, one MjModel per env and the batched physics; returns the per-object templates."""
        catalog = load_catalog()
        names = list(objects) if objects is not None else catalog.group(self.task_cfg.object_group)[0]
        unknown = [n for n in names if n not in catalog.objects]
        if not names or unknown:
            raise ValueError(
                f"objects must be non-empty catalog names; unknown: {unknown}, "
                f"known: {sorted(catalog.objects)}"
            )
        self.object_names = names
        self.object_specs = [catalog.objects[n] for n in names]
        scene = load_scene()
        self.table_top = float(scene.table_top_height)
        self.spawn_yaw = float(scene.spawn_yaw)
        templates = {n: physics_template(self.hand, catalog.objects[n], self.params) for n in names}
        self.models = EnvModels(templates, self.num_envs, depth_camera)
        self.index = self.models.index
        self.physics = BatchedPhysics(self.models.models, templates[names[0]], num_threads)
        self.substeps = default_substeps(self.params, self.hand)
        self.dt = float(self.physics.models[0].opt.timestep) * self.substeps
        return templates

    def _make_randomness(self, seed: int) -> None:
        """One generator per consumer, so switching one item on or off leaves the others' draws alone."""
        # spawn(7)'s first six children are spawn(6)'s: the seventh (noise levels) leaves their draws alone
        seeds = np.random.SeedSequence(seed).spawn(7)
        (self._rng_reset, self._rng_obs, self._rng_action, rng_action_lag, rng_frame_lag, rng_force,
         self._rng_noise_level) = (np.random.default_rng(s) for s in seeds)
        # Per-env noise levels of the items with std_min (drawn per episode at reset); others use their std.
        self._noise_std = {
            name: np.full(self.num_envs, getattr(self.rand_cfg, name).std)
            for name in NOISE_ITEMS if getattr(self.rand_cfg, name).std_min is not None
        }
        self._action_lag = LagBuffer(self.rand_cfg.action_lag, self.num_envs, rng_action_lag)
        self._frame_lag = LagBuffer(self.rand_cfg.frame_lag, self.num_envs, rng_frame_lag)
        self._force = ObjectForce(self.rand_cfg.object_force, self.num_envs, rng_force)
        self._disturbance: Any = None  # recipe_sim.disturbances.ScriptedDisturbance (set_disturbance)

    def _make_task(self, templates: dict[str, Any], init_states: str | Path | None) -> None:
        """The task (rewards, success, goals), the ready pose and the task-aware initial states."""
        max_stickers = max(
            len(sticker_points(s, 1.0, self.task_cfg.sticker_count)) for s in self.object_specs
        )
        self.task = make_task(self.task_cfg, self.reward_cfg, self.num_envs, self.table_top, max_stickers)
        ref = templates[self.object_names[0]]
        self.ready_q = ready_pose(ref.model, ref.index, configured_left_palm())
        path = init_states if init_states is not None else self.task_cfg.init_states
        self._init_states_path = path
        self.init_states = InitStates.load(path, task=self.task_cfg.kind) if path is not None else None
        if self.init_states is not None and self.init_states.hand != self.hand:
            raise ValueError(
                f"{path}: init states were recorded with the {self.init_states.hand!r} hand, "
                f"the env uses {self.hand!r}"
            )

    def _allocate_buffers(self) -> None:
        n = self.num_envs
        self._reset_targets = np.zeros((n, robot_spec.ACTION_DIM))
        self._prev_actions = np.zeros((n, robot_spec.ACTION_DIM))
        self._scales = np.zeros((n, len(PRIVILEGED_KEYS)))
        self._rest_z = np.zeros(n)
        self._ep_success = np.zeros(n, dtype=bool)
        self._ep_demo_success = np.zeros(n, dtype=bool)  # StepOutcome.demo_success reached this episode
        self._qpos0 = self.physics.models[0].qpos0.copy()
        # Replay hooks (recipe_sim.distill): each env's randomization draws of its current episode (rows of
        # sample_episode, set at reset) and the controls applied by the last step (joint targets after
        # noise/lag/hold, object force). With the state right after a reset these replay an episode exactly.
        self.episode_draws: dict[str, np.ndarray] = {}
        self.applied_ctrl = np.zeros((n, self.physics.nu))
        self.applied_force = np.zeros((n, 3))
        self._command_paths: list[CommandPath] | None = None
        # The actor's object position through the task's filter (identity at weight 0), restarted per episode.
        self._object_filter = ExponentialFilter(self.task_cfg.object_pos_filter, n)

    def _make_depth(self, depth_camera: str) -> obs_mod.DepthObservations:
        cam = load_scene().cameras[depth_camera]
        w, h = cam.policy_image if cam.policy_image is not None else (84, 84)
        return obs_mod.DepthObservations(self.physics, depth_camera, self.index.cameras[depth_camera], w, h)

    def _describe(self, seed: int, num_threads: int, depth_camera: str | None) -> dict[str, Any]:
        """The env's configuration as plain data (rsl-rl's ``cfg``; checkpoint metadata records it)."""
        path = self._init_states_path
        return {
            "task": self.task_cfg.name,
            "kind": self.task_cfg.kind,
            "num_envs": self.num_envs,
            "objects": list(self.object_names),
            "hand": self.hand,
            "seed": seed,
            "episode_length": self.max_episode_length,
            "dt": self.dt,
            "substeps": self.substeps,
            "num_threads": num_threads,
            "depth_camera": depth_camera,
            "policy_obs": dict(policy_layout(self.task.has_goal)),
            "object_pos_filter": self.task_cfg.object_pos_filter,
            "privileged_obs": dict(obs_mod.PRIVILEGED_FIELDS),
            "randomization": self.rand_cfg.to_dict(),
            "init_states": None if path is None else str(path),
        }

    # --- rsl-rl interface ------------------------------------------------------------------------------

    def get_observations(self) -> TensorDict:
        assert self._obs is not None
        return self._obs

    def step(self, actions: torch.Tensor | np.ndarray) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        a = self._check_actions(actions)
        lo, hi = self._action_bounds()
        a = np.clip(a, lo, hi)
        applied = self._action_lag(apply_action_noise(
            a, self.rand_cfg.action_noise, self._rng_action, self._noise_std.get("action_noise")))
        targets = robot_spec.action_to_joint_targets(applied, self.hand)
        hold = self.task.hold_mask()
        if hold is not None:
            targets = np.where(hold.numpy(), self._reset_targets, targets)
        self.physics.ctrl[:, self.index.actuator_ids] = targets
        force = self._force.step(self.dt, self._masses())
        min_lift = self.rand_cfg.object_force.min_lift
        if min_lift > 0.0:  # only on an object that is off the table (randomization.ForceItem)
            z = self.physics.qpos[:, self.index.object_qpos_adr + 2]
            force[z - self._rest_z < min_lift] = 0.0
        self.physics.xfrc[:, self.index.object_body, :3] = force
        if self._disturbance is not None:
            self._apply_disturbance()
        self.applied_ctrl = self.physics.ctrl.copy()
        self.applied_force = self.physics.xfrc[:, self.index.object_body, :3].copy()
        if self._command_paths is None:
            diverged = self.physics.step(self.substeps)
        else:
            diverged = self._step_through_command_paths(targets)

        frame = self._frame(a, diverged)
        out = self.task.evaluate(frame)
        div = torch.as_tensor(diverged)
        reward = torch.where(div, torch.zeros_like(out.reward), out.reward)
        failure = out.failure | div
        succ = out.success & ~div
        self._ep_success |= succ.numpy()
        self._ep_demo_success |= (out.demo_success & ~div).numpy()
        self.episode_length_buf += 1
        time_out = (self.episode_length_buf >= self.max_episode_length).cpu()
        terminated = failure | (succ if self.task_cfg.terminate_on_success else torch.zeros_like(succ))
        dones = terminated | time_out
        extras = {
            "time_outs": (time_out & ~terminated).to(self.device),
            "log": self._log(out.terms, dones, failure, div),
        }
        self._prev_actions = a
        done_ids = np.flatnonzero(dones.numpy())
        if len(done_ids):
            self._reset_envs(done_ids)
        self._obs = self._compute_obs()
        return self._obs, reward.to(self.device), dones.to(self.device), extras

    def set_command_path(self, factory: Callable[[], CommandPath] | None) -> None:
        """Put a command path between the policy's targets and the actuators, one per env (None: direct).

        The robot's driver does not pass a policy's targets straight to the motors: it ramps a new command
        source in, caps every joint's step and velocity and keeps a margin from the joint limits
        (``recipe_gr1_driver.command_path``). With it here, the env's joints see what the robot's would,
        at every physics substep: evaluate a policy as it will be deployed (deploy_bench's sim side).
        Each path starts holding the env's current joint targets and is reset with the robot at every
        reset or teleport. For evaluation: the replay hooks (``applied_ctrl``) keep recording the policy's
        targets, not the path's output.
        """
        if factory is None:
            self._command_paths = None
            return
        self._command_paths = [factory() for _ in range(self.num_envs)]
        self._reset_command_paths(np.arange(self.num_envs), self.physics.ctrl[:, self.index.actuator_ids])

    def _step_through_command_paths(self, targets: np.ndarray) -> np.ndarray:
        assert self._command_paths is not None
        sub = self.dt / self.substeps
        t0 = self.episode_length_buf.cpu().numpy() * self.dt
        ctrl = np.repeat(self.physics.ctrl[:, None, :], self.substeps, axis=1)
        for i, path in enumerate(self._command_paths):
            path.submit(targets[i], float(t0[i]))
            # A path's output depends on time and its own state, not the robot's: the whole control period
            # is known before the physics runs, and one rollout call steps it as the direct path does.
            for k in range(self.substeps):
                ctrl[i, k, self.index.actuator_ids] = path.update(float(t0[i]) + k * sub)
        return np.asarray(self.physics.step(self.substeps, ctrl_steps=ctrl), dtype=bool)

    def _reset_command_paths(self, ids: np.ndarray, q: np.ndarray) -> None:
        if self._command_paths is not None:
            for i, qi in zip(ids, q, strict=True):
                self._command_paths[int(i)].reset(qi)

    def set_disturbance(self, kind: str | None, seed: int = 0) -> None:
        """One scripted disturbance per episode from now on (``recipe_sim.disturbances``: poke, pull, push,
        drag), on top of the randomization's random force; None switches it off. For evaluation: an
        episode then counts as a success only if the task succeeds after its disturbance began."""
        from recipe_sim.disturbances import ScriptedDisturbance

        self._disturbance = None if kind is None else ScriptedDisturbance(
            kind, self.num_envs, self.dt, np.random.default_rng(seed))

    def _apply_disturbance(self) -> None:
        assert self._disturbance is not None
        ph, idx = self.physics, self.index
        oa, od = idx.object_qpos_adr, idx.object_dof_adr
        force, torque = self._disturbance.step(
            self.episode_length_buf.cpu().numpy(), ph.qpos[:, oa : oa + 3], ph.qvel[:, od : od + 3],
            ph.palms(), self._masses(), self._scales[:, PRIVILEGED_KEYS.index("object_friction")],
            self._rest_z - self.table_top)
        ph.xfrc[:, idx.object_body, :3] += force
        ph.xfrc[:, idx.object_body, 3:6] = torque
        # What counts is success after the disturbance (recovering from it), not a success it interrupted.
        self._ep_success[self._disturbance.started_now] = False
        self._ep_demo_success[self._disturbance.started_now] = False

    def reset(self, env_ids: Sequence[int] | np.ndarray | None = None) -> TensorDict:
        """Start new episodes in ``env_ids`` (all when None) and return the observations. rsl-rl never calls
        this (envs reset themselves inside ``step``); evaluation scripts and tests do."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=int).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"env_ids must be in [0, {self.num_envs}), got {ids.tolist()}")
        self._reset_envs(ids)
        self._obs = self._compute_obs()
        return self._obs

    def teleport(
        self,
        env_ids: Sequence[int] | np.ndarray,
        q: np.ndarray | None = None,
        object_pose: np.ndarray | None = None,
        hold_targets: bool = True,
    ) -> None:
        """Put envs into a given state at rest (scripted states, tests): actuated joints ``q`` (n, 26)
        radians (coupled joints follow) and/or the object pose (n, 7: xyz, wxyz quaternion).

        With ``hold_targets`` the joint targets become ``q``. The episode (goals, counters, clock) goes
        on; observations are recomputed.
        """
        ids = np.asarray(env_ids, dtype=int).reshape(-1)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= self.num_envs:
            raise ValueError(f"env_ids must be in [0, {self.num_envs}), got {ids.tolist()}")
        idx, ph = self.index, self.physics
        qpos = ph.qpos[ids].copy()
        if q is not None:
            q = np.asarray(q, dtype=np.float64)
            if q.shape != (len(ids), robot_spec.ACTION_DIM) or not np.isfinite(q).all():
                raise ValueError(
                    f"q must be a finite ({len(ids)}, {robot_spec.ACTION_DIM}) array, got {q.shape}"
                )
            qpos[:, idx.actuated_qpos_adr] = q
            eq = ph.models[0].eq_data[idx.coupling_eq_ids]
            qpos[:, idx.coupled_qpos_adr] = eq[:, 0] + eq[:, 1] * q[:, idx.coupling_actuated_index]
            self._reset_command_paths(ids, q)  # a driver holds the pose the robot is in
            if hold_targets:
                ph.ctrl[np.ix_(ids, idx.actuator_ids)] = q
                self._reset_targets[ids] = q
                self._prev_actions[ids] = robot_spec.joint_targets_to_action(q, self.hand)
        if object_pose is not None:
            pose = np.asarray(object_pose, dtype=np.float64)
            if pose.shape != (len(ids), 7) or not np.isfinite(pose).all():
                raise ValueError(f"object_pose must be a finite ({len(ids)}, 7) array, got {pose.shape}")
            pose[:, 3:] /= np.linalg.norm(pose[:, 3:], axis=1, keepdims=True)
            qpos[:, idx.object_qpos_adr : idx.object_qpos_adr + 7] = pose
        ph.qpos[ids] = qpos
        ph.qvel[ids] = 0.0
        ph.refresh_sensors(ids)
        self._action_lag.reset(ids)
        self._frame_lag.reset(ids)
        self._object_filter.restart(ids)  # the state jumped: no estimate from before it
        self._obs = self._compute_obs()

    def close(self) -> None:
        if self.depth is not None:
            self.depth.close()
            self.depth = None

    # --- helpers -------------------------------------------------------------------------------------------

    def _check_actions(self, actions: torch.Tensor | np.ndarray) -> np.ndarray:
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        if a.shape != (self.num_envs, self.num_actions):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.num_actions}), got {a.shape}")
        a = a.astype(np.float64)
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ValueError(f"actions contain NaN/inf for envs {np.flatnonzero(bad)[:10].tolist()}")
        return a

    def _action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return robot_spec.action_bounds(self.hand)

    def _masses(self) -> np.ndarray:
        """(N,) object masses as written at the last reset (kg)."""
        return self._scales[:, PRIVILEGED_KEYS.index("object_mass")]

    def _frame(self, actions: np.ndarray, diverged: np.ndarray | None = None) -> Frame:
        idx, ph = self.index, self.physics
        qpos, qvel = ph.qpos, ph.qvel
        oa, od = idx.object_qpos_adr, idx.object_dof_adr
        q = qpos[:, idx.actuated_qpos_adr].copy()
        qd = qvel[:, idx.actuated_dof_adr].copy()
        pos = qpos[:, oa : oa + 3].copy()
        quat = qpos[:, oa + 3 : oa + 7].copy()
        linvel = qvel[:, od : od + 3].copy()
        angvel = qvel[:, od + 3 : od + 6].copy()
        tips, palms, touching = ph.tips(), ph.palms(), ph.hands_touching()
        if diverged is not None and diverged.any():
            # A diverged env is reset below; give the task finite placeholders so nothing downstream sees NaN.
            d = diverged
            anchor = self.task.anchor.numpy()[d]
            q[d], qd[d], pos[d], linvel[d], angvel[d] = self._reset_targets[d], 0.0, anchor, 0.0, 0.0
            quat[d] = (1.0, 0.0, 0.0, 0.0)
            tips[d], palms[d], touching[d] = anchor[:, None, None, :], anchor[:, None, :], False
        norm = np.linalg.norm(quat, axis=1, keepdims=True)
        quat = np.where(norm > 1e-9, quat / np.where(norm > 1e-9, norm, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))
        angvel = obs_mod.quat_rotate_np(quat, angvel)  # free joint angular velocity is in the body frame
        t = obs_mod.to_tensor
        return Frame(
            q=t(q, "cpu"),
            qd=t(qd, "cpu"),
            obj_pos=t(pos, "cpu"),
            obj_quat=t(quat, "cpu"),
            obj_linvel=t(linvel, "cpu"),
            obj_angvel=t(angvel, "cpu"),
            tips=t(tips, "cpu"),
            palms=t(palms, "cpu"),
            actions=t(actions, "cpu"),
            prev_actions=t(self._prev_actions, "cpu"),
            hands_touching=torch.as_tensor(touching),
        )

    def _sample_randomization(self, object_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Per-env Table IV draws; mass/friction ranges are the catalog object's own."""
        n = len(object_ids)
        out: dict[str, np.ndarray] = {}
        for oid in np.unique(object_ids):
            rows = np.flatnonzero(object_ids == oid)
            spec = self.object_specs[oid]
            s = sample_episode(
                self.rand_cfg,
                self._rng_reset,
                len(rows),
                mass_range=spec.mass_range,
                friction_range=spec.friction_range,
            )
            for key, value in s.items():
                if key not in out:
                    out[key] = np.zeros((n, *value.shape[1:]))
                out[key][rows] = value
        return out

    def _reset_envs(self, env_ids: np.ndarray) -> None:
        ids = np.asarray(env_ids, dtype=int)
        n, rng, idx, ph = len(ids), self._rng_reset, self.index, self.physics
        object_ids = rng.integers(0, len(self.object_names), size=n)
        sample = self._sample_randomization(object_ids)
        for key, value in sample.items():
            if key not in self.episode_draws:
                self.episode_draws[key] = np.zeros((self.num_envs, *np.shape(value)[1:]))
            self.episode_draws[key][ids] = value
        for k, i in enumerate(ids):
            self.models.write(int(i), int(object_ids[k]), sample, k, self.rand_cfg)
            values = self.models.object_values(int(i))
            self._scales[i] = [values[key] for key in PRIVILEGED_KEYS]
        specs = [self.object_specs[o] for o in object_ids]
        scale = np.asarray(sample["object_scale"])
        self.task.set_objects(ids, specs, scale)
        spawn = self.task.spawn_positions(ids, rng)
        rest = np.array([rest_height(s, float(c)) for s, c in zip(specs, scale, strict=True)])
        self._rest_z[ids] = self.table_top + rest

        if self.init_states is not None:
            q, pose = self.init_states.sample(rng, n, [self.object_names[o] for o in object_ids])
            pose[:, 2] = np.maximum(pose[:, 2], self.table_top + rest + SPAWN_CLEARANCE)
        else:
            q = np.broadcast_to(self.ready_q, (n, robot_spec.ACTION_DIM)).copy()
            pose = np.zeros((n, 7))
            pose[:, :2] = spawn[:, :2] + sample["object_init_pos_offset"][:, :2]
            pose[:, 2] = self.table_top + rest + SPAWN_CLEARANCE
            yaw = self.spawn_yaw + sample["object_init_yaw"]
            pose[:, 3], pose[:, 6] = np.cos(yaw / 2.0), np.sin(yaw / 2.0)

        qpos = np.broadcast_to(self._qpos0, (n, ph.nq)).copy()
        qpos[:, idx.actuated_qpos_adr] = q
        eq = ph.models[0].eq_data[idx.coupling_eq_ids]
        qpos[:, idx.coupled_qpos_adr] = eq[:, 0] + eq[:, 1] * q[:, idx.coupling_actuated_index]
        qpos[:, idx.object_qpos_adr : idx.object_qpos_adr + 7] = pose
        ph.qpos[ids] = qpos
        ph.qvel[ids] = 0.0
        ph.time[ids] = 0.0
        ph.ctrl[np.ix_(ids, idx.actuator_ids)] = q
        ph.xfrc[ids] = 0.0
        ph.refresh_sensors(ids)

        self._reset_targets[ids] = q
        self._reset_command_paths(ids, q)
        self._prev_actions[ids] = robot_spec.joint_targets_to_action(q, self.hand)
        self._force.reset(ids)
        if self._disturbance is not None:
            self._disturbance.reset(ids)
        self._action_lag.reset(ids)
        self._frame_lag.reset(ids)
        self._object_filter.restart(ids)
        for name, level in self._noise_std.items():
            level[ids] = episode_noise_std(getattr(self.rand_cfg, name), self._rng_noise_level, n)
        self._ep_success[ids] = False
        self._ep_demo_success[ids] = False
        self.episode_length_buf[torch.as_tensor(ids, device=self.device)] = 0
        frame = self._frame(self._prev_actions)
        self.task.finish_reset(ids, frame, self._rest_z[ids], rng)

    def _compute_obs(self) -> TensorDict:
        idx, ph = self.index, self.physics
        frame = self._frame(self._prev_actions)
        goal = self.task.goal.numpy() if self.task.has_goal else None
        oa = idx.object_qpos_adr
        policy = obs_mod.policy_obs(
            ph.qpos[:, idx.actuated_qpos_adr], ph.qpos[:, oa : oa + 3], goal, self.rand_cfg, self._rng_obs,
            self._noise_std,
        )
        policy[:, _OBJECT_POS] = self._object_filter(policy[:, _OBJECT_POS])  # a lagged frame repeats it
        groups: dict[str, torch.Tensor] = {}
        if self.depth is not None:
            depth = self.depth.render()
            n = self.num_envs
            lagged = self._frame_lag(np.concatenate([policy, depth.reshape(n, -1)], axis=1))
            policy = lagged[:, : policy.shape[1]]
            groups["depth"] = obs_mod.to_tensor(
                lagged[:, policy.shape[1] :].reshape(depth.shape), self.device
            )
        else:
            policy = self._frame_lag(policy)
        privileged = obs_mod.privileged_obs(
            frame.qd.numpy(),
            frame.tips.numpy(),
            frame.obj_quat.numpy(),
            frame.obj_linvel.numpy(),
            frame.obj_angvel.numpy(),
            self._scales,
            frame.obj_pos.numpy(),
            self.task.task_obs().numpy(),
        )
        groups["policy"] = obs_mod.to_tensor(policy, self.device)
        groups["privileged"] = obs_mod.to_tensor(privileged, self.device)
        return TensorDict(groups, batch_size=[self.num_envs], device=self.device)

    def _log(
        self,
        terms: Mapping[str, torch.Tensor],
        dones: torch.Tensor,
        failure: torch.Tensor,
        diverged: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        log = {f"/reward/{k}": v.mean() for k, v in terms.items()}
        done = dones.numpy()
        if done.any():
            # One entry per finished episode: rsl-rl concatenates the entries of all steps and averages,
            # so the logged value is the success rate of all episodes finished in the iteration.
            log["/episode/success"] = torch.as_tensor(self._ep_success[done], dtype=torch.float32)
            log[DEMO_SUCCESS_LOG_KEY] = torch.as_tensor(self._ep_demo_success[done], dtype=torch.float32)
            log["/episode/failure"] = failure[dones].to(torch.float32)
            log["/episode/diverged"] = diverged[dones].to(torch.float32)
            log["/episode/length"] = self.episode_length_buf.cpu()[dones].to(torch.float32)
        return log
