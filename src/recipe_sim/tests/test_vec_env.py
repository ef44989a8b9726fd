"""RecipeVecEnv: the rsl-rl VecEnv contract, determinism, auto-reset, randomization ranges, NaN recovery,
noise-free observations without randomization, object switching, init states and depth images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from recipe_common import robot_spec
from recipe_common.observation import field_slice
from recipe_sim.init_states import InitStates
from recipe_sim.randomization import NoiseItem, RandomizationConfig
from recipe_sim.vec_env import DEMO_SUCCESS_LOG_KEY, RecipeVecEnv

N = 4


def random_actions(env: RecipeVecEnv, rng: np.random.Generator) -> torch.Tensor:
    """Random actions around the start pose (arms +-0.3 rad, hands anywhere in 0..1)."""
    base = robot_spec.joint_targets_to_action(env.ready_q, env.hand)
    a = np.tile(base, (env.num_envs, 1))
    a[:, :14] += rng.uniform(-0.3, 0.3, size=(env.num_envs, 14))
    a[:, 14:] = rng.uniform(0.0, 1.0, size=(env.num_envs, 12))
    return torch.as_tensor(a, dtype=torch.float32)


@pytest.fixture(scope="module")
def env() -> RecipeVecEnv:
    return RecipeVecEnv("grasp_reach", N, objects=["can_small", "cube_small", "ball_small"], seed=3)


def test_vecenv_contract(env):
    assert isinstance(env, VecEnv)
    assert env.num_envs == N and env.num_actions == 26 and env.max_episode_length == 100
    assert env.episode_length_buf.shape == (N,) and env.episode_length_buf.dtype == torch.long
    assert str(env.device) == "cpu" and isinstance(env.cfg, dict)
    obs = env.get_observations()
    assert isinstance(obs, TensorDict) and tuple(obs.batch_size) == (N,)
    assert obs["policy"].shape == (N, 26 + 3 + 3) and obs["policy"].dtype == torch.float32
    assert obs["privileged"].shape == (N, sum(env.cfg["privileged_obs"].values()))
    obs, rew, dones, extras = env.step(random_actions(env, np.random.default_rng(0)))
    assert set(obs.keys()) == {"policy", "privileged"}
    assert rew.shape == (N,) and rew.dtype == torch.float32 and torch.isfinite(rew).all()
    assert dones.shape == (N,) and dones.dtype == torch.bool
    assert extras["time_outs"].shape == (N,) and extras["time_outs"].dtype == torch.bool
    assert extras["log"] and all(k.startswith("/") for k in extras["log"])
    assert {"/reward/contact", "/reward/goal", "/reward/action_rate"} <= set(extras["log"])
    assert torch.equal(env.episode_length_buf, torch.ones(N, dtype=torch.long))


def test_bad_actions_raise(env):
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(N, 25))
    bad = random_actions(env, np.random.default_rng(1))
    bad[2, 5] = float("nan")
    with pytest.raises(ValueError, match=r"NaN/inf for envs \[2\]"):
        env.step(bad)


def test_time_limit_auto_resets_with_time_outs():
    env = RecipeVecEnv("box_lift", 2, seed=1, task_overrides={"episode_length": 3})
    start = env.physics.qpos[:, env.index.object_qpos_adr : env.index.object_qpos_adr + 3].copy()
    rng = np.random.default_rng(0)
    for step in range(3):
        _, _, dones, extras = env.step(random_actions(env, rng))
        if step < 2:
            assert not dones.any()
    assert dones.all() and extras["time_outs"].all()
    assert torch.equal(env.episode_length_buf, torch.zeros(2, dtype=torch.long))
    assert extras["log"]["/episode/length"].tolist() == [3.0, 3.0]
    assert extras["log"]["/episode/success"].tolist() == [0.0, 0.0]
    assert extras["log"][DEMO_SUCCESS_LOG_KEY].tolist() == [0.0, 0.0]
    # New episodes: object back on the table near the spawn region, robot back at its start pose.
    pos = env.physics.qpos[:, env.index.object_qpos_adr : env.index.object_qpos_adr + 3]
    assert np.allclose(pos[:, 2], env._rest_z + 0.001, atol=1e-6)
    assert np.all(np.abs(pos[:, :2] - start[:, :2]) < 0.1)
    q = env.physics.qpos[:, env.index.actuated_qpos_adr]
    assert np.allclose(q, env.ready_q, atol=1e-9)


def _rollout(seed: int, steps: int = 20) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    env = RecipeVecEnv("handover", 3, seed=seed, task_overrides={"episode_length": 8})
    rng = np.random.default_rng(42)
    obs, rewards = [env.get_observations()["policy"].clone()], []
    for _ in range(steps):
        o, r, _, _ = env.step(random_actions(env, rng))
        obs.append(torch.cat([o["policy"], o["privileged"]], dim=1).clone())
        rewards.append(r.clone())
    return obs, rewards


def test_same_seed_same_rollout_and_other_seed_differs():
    o1, r1 = _rollout(7)
    o2, r2 = _rollout(7)
    assert all(torch.equal(a, b) for a, b in zip(o1, o2, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(r1, r2, strict=True))
    o3, _ = _rollout(8)
    assert not torch.equal(o1[0], o3[0])


def test_randomized_model_values_stay_in_range():
    cfg = RandomizationConfig.load()
    env = RecipeVecEnv("grasp_reach", 12, seed=5, randomization=cfg)
    env.reset()  # a second draw for every env
    kp_lo, kp_hi = cfg.kp_scale.range
    kd_lo, kd_hi = cfg.kd_scale.range
    seen_scale = []
    for i in range(12):
        values = env.models.object_values(i)
        spec = env.object_specs[env.models.object_id[i]]
        assert spec.mass_range[0] <= values["object_mass"] <= spec.mass_range[1]
        assert spec.friction_range[0] <= values["object_friction"] <= spec.friction_range[1]
        assert cfg.object_scale.range[0] - 1e-9 <= values["object_scale"] <= cfg.object_scale.range[1] + 1e-9
        assert cfg.hand_friction.range[0] <= values["hand_friction"] <= cfg.hand_friction.range[1]
        m, t = env.physics.models[i], env.models.template_of(i)
        a = env.index.actuator_ids
        kp = m.actuator_gainprm[a, 0] / t.model.actuator_gainprm[a, 0]
        kd = m.actuator_biasprm[a, 2] / t.model.actuator_biasprm[a, 2]
        assert np.all((kp >= kp_lo - 1e-9) & (kp <= kp_hi + 1e-9)) and np.ptp(kp) < 1e-9
        assert np.all((kd >= kd_lo - 1e-9) & (kd <= kd_hi + 1e-9))
        assert np.allclose(m.actuator_biasprm[a, 1], -m.actuator_gainprm[a, 0])  # position bias follows kp
        g = env.index.object_geom
        assert np.allclose(m.geom_size[g], t.model.geom_size[g] * values["object_scale"])
        seen_scale.append(values["object_scale"])
        priv = env.get_observations()["privileged"][i]
        assert priv[-2 - 3 - 6 : -2 - 3].numpy() == pytest.approx(
            [
                values[k]
                for k in (
                    "object_mass",
                    "object_friction",
                    "object_scale",
                    "hand_friction",
                    "kp_scale",
                    "kd_scale",
                )
            ],
            rel=1e-5,
        )
    assert np.ptp(seen_scale) > 0.0  # actually randomized, not all nominal


def test_objects_switch_per_env_with_matching_geometry(env):
    import mujoco

    shapes = {
        "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
        "box": mujoco.mjtGeom.mjGEOM_BOX,
        "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    }
    seen = set()
    for _ in range(4):
        env.reset()
        for i in range(N):
            spec = env.object_specs[env.models.object_id[i]]
            assert env.physics.models[i].geom_type[env.index.object_geom] == shapes[spec.shape]
            seen.add(spec.name)
    assert len(seen) >= 2


def test_nan_state_resets_that_env_and_counts_a_failure():
    env = RecipeVecEnv("grasp_reach", 3, seed=2)
    rng = np.random.default_rng(0)
    env.step(random_actions(env, rng))
    env.physics.qvel[1, :] = np.nan
    obs, rew, dones, extras = env.step(random_actions(env, rng))
    assert dones.tolist() == [False, True, False] and not extras["time_outs"][1]
    assert extras["log"]["/episode/diverged"].tolist() == [1.0]
    assert extras["log"]["/episode/failure"].tolist() == [1.0]
    assert (
        torch.isfinite(rew).all()
        and torch.isfinite(obs["policy"]).all()
        and torch.isfinite(obs["privileged"]).all()
    )
    assert env.episode_length_buf.tolist() == [2, 0, 2]
    assert np.isfinite(env.physics.state).all()
    obs, rew, dones, _ = env.step(random_actions(env, rng))  # and the env keeps going
    assert torch.isfinite(rew).all()


def test_observations_carry_no_noise_without_randomization():
    # Raw readings: tasks.yaml's object-position filter would trail a moving object (tested on its own below).
    env = RecipeVecEnv("grasp_reach", 3, seed=4, randomization=RandomizationConfig.disabled(),
                       task_overrides={"object_pos_filter": 0.0})
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, _, _, _ = env.step(random_actions(env, rng))
        true_q = env.physics.qpos[:, env.index.actuated_qpos_adr]
        oa = env.index.object_qpos_adr
        true_obj = env.physics.qpos[:, oa : oa + 3]
        p = obs["policy"].numpy()
        assert np.allclose(p[:, :26], true_q, atol=1e-6)
        assert np.allclose(p[:, 26:29], true_obj, atol=1e-6)
        assert np.allclose(p[:, 29:32], env.task.goal.numpy(), atol=1e-6)
        assert np.allclose(obs["privileged"][:, -5:-2].numpy(), true_obj, atol=1e-6)
    # ... and the default randomization does add observation noise.
    noisy = RecipeVecEnv("grasp_reach", 3, seed=4)
    p = noisy.get_observations()["policy"].numpy()
    assert np.abs(p[:, :26] - noisy.physics.qpos[:, noisy.index.actuated_qpos_adr]).max() > 0.05


def test_action_noise_and_lag_only_with_randomization():
    quiet = RecipeVecEnv("grasp_reach", 2, seed=0, randomization=RandomizationConfig.disabled())
    a = random_actions(quiet, np.random.default_rng(3))
    quiet.step(a)
    expect = robot_spec.action_to_joint_targets(a.double().numpy(), quiet.hand)
    hold = quiet.task.hold_mask().numpy()
    expect = np.where(hold, quiet._reset_targets, expect)
    assert np.allclose(quiet.physics.ctrl[:, quiet.index.actuator_ids], expect)
    cfg = RandomizationConfig.disabled()
    cfg = dataclasses.replace(cfg, action_noise=dataclasses.replace(cfg.action_noise, enabled=True))
    noisy = RecipeVecEnv("grasp_reach", 2, seed=0, randomization=cfg)
    noisy.step(a)
    diff = np.abs(noisy.physics.ctrl[:, noisy.index.actuator_ids] - expect)[~hold]
    assert diff.max() > 1e-3


def test_random_object_force_reaches_the_physics():
    cfg = RandomizationConfig.disabled()
    forced = dataclasses.replace(
        cfg, object_force=dataclasses.replace(cfg.object_force, enabled=True, probability=1.0, scale=2.0)
    )
    envs = [RecipeVecEnv("grasp_reach", 2, seed=0, randomization=c) for c in (cfg, forced)]
    hold = torch.as_tensor(robot_spec.joint_targets_to_action(envs[0]._reset_targets), dtype=torch.float32)
    for e in envs:
        e.step(hold)
    b, oa = envs[1].index.object_body, envs[1].index.object_qpos_adr
    force = envs[1].physics.xfrc[:, b, :3]
    mass = np.array([m.body_mass[b] for m in envs[1].physics.models])
    assert np.allclose(np.linalg.norm(force, axis=1), 2.0 * mass, rtol=0.05)  # |F| = scale * mass
    assert not envs[0].physics.xfrc.any()
    moved = envs[1].physics.qpos[:, oa : oa + 3] - envs[0].physics.qpos[:, oa : oa + 3]
    assert np.linalg.norm(moved, axis=1).min() > 1e-4


def test_object_force_with_min_lift_spares_a_resting_object_and_pushes_a_lifted_one():
    cfg = RandomizationConfig.disabled()
    item = dataclasses.replace(cfg.object_force, enabled=True, probability=1.0, scale=2.0, min_lift=0.01)
    env = RecipeVecEnv("grasp_reach", 2, seed=0, objects=["ball_medium"],
                       randomization=dataclasses.replace(cfg, object_force=item))
    hold = torch.as_tensor(robot_spec.joint_targets_to_action(env._reset_targets), dtype=torch.float32)
    b, oa = env.index.object_body, env.index.object_qpos_adr
    start = env.physics.qpos[:, oa : oa + 3].copy()
    for _ in range(5):
        env.step(hold)
    assert not env.physics.xfrc[:, b, :3].any()  # on the table: no force, and a ball stays put
    assert np.abs(env.physics.qpos[:, oa : oa + 2] - start[:, :2]).max() < 1e-4  # (it settles 1 mm)
    pose = env.physics.qpos[:, oa : oa + 7].copy()
    pose[0, 2] += 0.05  # env 0's ball 5 cm up (it falls back during the step, but starts lifted)
    env.teleport([0], object_pose=pose[[0]], hold_targets=False)
    env.step(hold)
    force = env.physics.xfrc[:, b, :3]
    assert np.linalg.norm(force[0]) > 0.0 and not force[1].any()
    assert "min_lift" not in RandomizationConfig().to_dict()["object_force"]  # the default writes as before
    assert dataclasses.replace(cfg, object_force=item).to_dict()["object_force"]["min_lift"] == 0.01


def test_init_states_are_sampled_at_reset(tmp_path):
    base = RecipeVecEnv("grasp_reach", 1, objects=["can_small"], randomization=RandomizationConfig.disabled())
    q = np.stack([base.ready_q, base.ready_q])
    q[1, :7] += 0.1  # a second, distinguishable arm pose
    pose = np.array(
        [[0.35, 0.05, base.table_top + 0.05, 1, 0, 0, 0], [0.33, -0.08, base.table_top + 0.05, 1, 0, 0, 0]]
    )
    path = InitStates(task="grasp_reach", hand="fourier", source="scripted", q=q, object_pose=pose).save(
        tmp_path / "gr.npz"
    )
    env = RecipeVecEnv(
        "grasp_reach",
        6,
        objects=["can_small"],
        init_states=path,
        randomization=RandomizationConfig.disabled(),
    )
    got_q = env.physics.qpos[:, env.index.actuated_qpos_adr]
    match = [int(np.argmin(np.abs(q - g).max(axis=1))) for g in got_q]
    assert all(np.abs(q[k] - g).max() < 1e-9 for k, g in zip(match, got_q, strict=True))
    oa = env.index.object_qpos_adr
    assert np.allclose(env.physics.qpos[:, oa : oa + 2], pose[match, :2])
    with pytest.raises(ValueError, match="not 'box_lift'"):
        RecipeVecEnv("box_lift", 1, init_states=path)


def test_head_depth_observation():
    env = RecipeVecEnv(
        "grasp_reach", 2, seed=0, depth_camera="head_depth", randomization=RandomizationConfig.disabled()
    )
    depth = env.get_observations()["depth"]
    assert depth.shape == (2, 1, 84, 84) and depth.dtype == torch.float32
    assert torch.isfinite(depth).all() and depth.min() > 0.1 and depth.max() < 5.0
    obs, _, _, _ = env.step(random_actions(env, np.random.default_rng(0)))
    assert obs["depth"].shape == (2, 1, 84, 84)
    # The table fills the lower image: its depth grows towards the top of the image (farther rows).
    column = obs["depth"][0, 0, :, 5]
    assert column[-1] < column[40]
    env.close()


def test_rsl_rl_ppo_runner_trains_on_the_env():
    from rsl_rl.runners import OnPolicyRunner

    env = RecipeVecEnv("handover", 3, seed=0)
    cfg = {
        "num_steps_per_env": 6,
        "save_interval": 100,
        "multi_gpu": None,
        "obs_groups": {"actor": ["policy"], "critic": ["policy", "privileged"]},
        "algorithm": {"class_name": "PPO", "num_learning_epochs": 1, "num_mini_batches": 1},
        "actor": {
            "class_name": "MLPModel",
            "hidden_dims": [32, 32],
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 0.1},
        },
        "critic": {"class_name": "MLPModel", "hidden_dims": [32, 32]},
    }
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    before = [p.detach().clone() for p in runner.alg.actor.parameters()]
    runner.learn(1, init_at_random_ep_len=True)
    after = list(runner.alg.actor.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))  # PPO updated the actor
    assert torch.isfinite(env.get_observations()["policy"]).all()


class PassThroughCommandPath:
    """A command path that changes nothing: the actuators get the policy's targets as they are.

    With it the env's trajectory must be that of commanding the actuators directly. It was not
    while the env stepped a path one substep per ``mujoco.rollout`` call (each call starts the solver cold),
    and the handover clone flipped on that in 49 of 256 spawns (docs/deploy.md).
    """

    def __init__(self) -> None:
        self._q: np.ndarray | None = None

    def reset(self, q: np.ndarray) -> np.ndarray:
        self._q = np.array(q, dtype=np.float64)
        return self._q.copy()

    def submit(self, q: np.ndarray, t: float) -> None:
        self._q = np.array(q, dtype=np.float64)

    def update(self, t: float) -> np.ndarray:
        if self._q is None:
            raise RuntimeError("PassThroughCommandPath.update before reset()")
        return self._q.copy()


def test_a_pass_through_command_path_commands_the_targets_unchanged():
    """Stepping through a command path is stepping the same physics: a path that changes nothing gives the
    trajectory of commanding the actuators directly, to the bit (the solver's warm start included)."""
    def run(path: bool) -> tuple[np.ndarray, np.ndarray]:
        e = RecipeVecEnv("grasp_reach", 2, objects=["can_medium"], seed=0,
                         randomization=RandomizationConfig.disabled())
        if path:
            e.set_command_path(PassThroughCommandPath)
        e.reset()
        acts = random_actions(e, np.random.default_rng(5))
        for _ in range(5):
            e.step(acts)
        return e.physics.ctrl[:, e.index.actuator_ids].copy(), e.physics.state.copy()

    (ctrl_direct, s_direct), (ctrl_path, s_path) = run(False), run(True)
    assert np.array_equal(ctrl_path, ctrl_direct)
    assert np.array_equal(s_path, s_direct)
    with pytest.raises(RuntimeError, match="before reset"):
        PassThroughCommandPath().update(0.0)


def test_a_noise_range_gives_each_env_its_own_level_per_episode():
    cfg = RandomizationConfig.disabled()
    cfg = dataclasses.replace(cfg, joint_obs_noise=NoiseItem(True, 0.05, 0.001))
    env = RecipeVecEnv("grasp_reach", 4, seed=5, randomization=cfg)
    first = env._noise_std["joint_obs_noise"].copy()
    assert np.all((first >= 0.001) & (first <= 0.05)) and len(set(first.tolist())) == 4
    true_q = env.physics.qpos[:, env.index.actuated_qpos_adr]
    err = np.abs(env.get_observations()["policy"].numpy()[:, :26] - true_q).std(axis=1)
    assert np.argmax(err) == np.argmax(first) and np.argmin(err) == np.argmin(first)
    env.reset()
    assert not np.array_equal(env._noise_std["joint_obs_noise"], first)  # drawn again for new episodes


def _object_position(env: RecipeVecEnv) -> np.ndarray:
    return env.get_observations()["policy"].numpy()[:, field_slice("object_pos")].astype(np.float64)


def test_the_object_position_filter_smooths_readings_and_restarts_at_reset_and_teleport():
    # Two envs with one seed see the same noisy readings (the filter draws nothing); one filters them.
    rand = dataclasses.replace(RandomizationConfig.disabled(), object_pos_obs_noise=NoiseItem(True, 0.02))
    raw = RecipeVecEnv("handover", 3, seed=4, randomization=rand, task_overrides={"object_pos_filter": 0.0})
    smooth = RecipeVecEnv("handover", 3, seed=4, randomization=rand,
                          task_overrides={"object_pos_filter": 0.5})
    assert (raw.cfg["object_pos_filter"], smooth.cfg["object_pos_filter"]) == (0.0, 0.5)
    estimate = _object_position(raw)
    np.testing.assert_allclose(_object_position(smooth), estimate, atol=1e-6)  # the first reading as it is
    hold = raw._prev_actions.copy()
    for _ in range(3):
        raw.step(hold)
        smooth.step(hold)
        estimate = 0.5 * estimate + 0.5 * _object_position(raw)
        np.testing.assert_allclose(_object_position(smooth), estimate, atol=1e-5)
    assert np.abs(_object_position(smooth) - _object_position(raw)).max() > 1e-3  # it did smooth

    raw.reset([1])
    smooth.reset([1])
    np.testing.assert_allclose(_object_position(smooth)[1], _object_position(raw)[1], atol=1e-6)
    oa = raw.index.object_qpos_adr
    pose = raw.physics.qpos[[2], oa : oa + 7].copy()
    pose[0, 0] += 0.03
    raw.teleport([2], object_pose=pose)
    smooth.teleport([2], object_pose=pose)
    np.testing.assert_allclose(_object_position(smooth)[2], _object_position(raw)[2], atol=1e-6)
    assert np.abs(_object_position(smooth)[0] - _object_position(raw)[0]).max() > 1e-4  # row 0 kept going
    raw.close()
    smooth.close()


@pytest.mark.parametrize("weight", [1.0, -0.2, "0.5"])
def test_an_object_position_filter_outside_zero_to_one_is_refused_naming_the_key(weight):
    with pytest.raises(ValueError, match=r"tasks\.handover\.object_pos_filter"):
        RecipeVecEnv("handover", 1, task_overrides={"object_pos_filter": weight})
