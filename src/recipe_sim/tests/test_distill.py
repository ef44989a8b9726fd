"""Distillation in the sim: deterministic replay of recorded episodes, collection, a tiny end-to-end run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recipe_common.policy_image import PolicyImageSpec, to_policy_image
from recipe_policy.loading import load_policy
from recipe_sim.distill.replay import EpisodeRenderer, replay_physics
from recipe_sim.ppo.envs import randomization_config
from recipe_sim.vec_env import RecipeVecEnv

SPECIALIST = "grasp_reach_can_medium"
TINY_STEPS = 300


def _low_noise():
    from recipe_common.paths import config_path

    return randomization_config(True, path=config_path("randomization_low_noise.yaml"))


def test_a_recorded_episode_replays_exactly_and_renders_as_the_env_does():
    """Physics from the first state + applied controls reproduces every state bit for bit; the depth rendered
    from the recorded states with the episode's camera noise equals what the env rendered live."""
    rand = replace(_low_noise(), frame_lag=replace(_low_noise().frame_lag, enabled=False))  # unlagged depth
    env = RecipeVecEnv(
        "grasp_reach",
        3,
        objects=["can_medium"],
        seed=5,
        randomization=rand,
        depth_camera="head_depth",
        num_threads=1,
        task_overrides={"init_states": None, "episode_length": 12},
    )
    policy = load_policy(SPECIALIST)
    spec = PolicyImageSpec.for_camera()
    try:
        init = env.physics.state.copy()
        draws = {k: v.copy() for k, v in env.episode_draws.items()}
        qpos, ctrl, force, depth = [], [], [], []
        for _ in range(10):
            obs = env.get_observations()
            qpos.append(env.physics.qpos.copy())
            depth.append(obs["depth"].numpy()[:, 0].copy())
            env.step(policy.predict_batch(obs["policy"].numpy()))
            ctrl.append(env.applied_ctrl.copy())
            force.append(env.applied_force.copy())
        qpos, ctrl, force, depth = map(np.stack, (qpos, ctrl, force, depth))
        assert np.abs(force).max() > 0  # the random pushes were part of the episode
        renderer = EpisodeRenderer(env.models.templates, spec)
        try:
            for i in range(env.num_envs):
                d_i = {k: v[i] for k, v in draws.items()}
                q = replay_physics(
                    env.models.templates,
                    "can_medium",
                    d_i,
                    rand,
                    init[i],
                    ctrl[:, i],
                    force[:, i],
                    env.substeps,
                )
                np.testing.assert_array_equal(q, qpos[:, i])
                frames = renderer.render_episode("can_medium", d_i, rand, qpos[:, i])
                live = np.stack([to_policy_image(f, spec.intrinsics(), spec) for f in depth[:, i]])
                np.testing.assert_allclose(frames, live, atol=1e-5)
        finally:
            renderer.close()
        # Another episode's draws (other camera noise) give another image: the draws are really used.
        other = {k: v[1] for k, v in draws.items()}
        r2 = EpisodeRenderer(env.models.templates, spec)
        try:
            assert not np.allclose(r2.render_episode("can_medium", other, rand, qpos[:1, 0]), live[:1])
        finally:
            r2.close()
    finally:
        env.close()


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    from recipe_sim.distill.collect import main as collect_main

    out = tmp_path_factory.mktemp("distill") / "d.zarr"
    assert (
        collect_main(
            [
                "--specialists",
                SPECIALIST,
                "--steps",
                "300",
                "--num-envs",
                "6",
                "--episode-length",
                "60",
                "--out",
                str(out),
                "--no-progress",
                "--verify-replay",
                "1",
            ]
        )
        == 0
    )
    return out


def test_collect_keeps_only_successes_with_depth_and_a_record(collected: Path):
    from recipe_policy.dataset import open_dataset

    ds = open_dataset(collected, values=True)
    rec = ds.record
    assert ds.n_steps >= 300 and ds.n_episodes >= 5
    assert np.all(np.diff(np.concatenate([[0], ds.episode_ends])) == 60)
    assert rec["objects"] == ["can_medium"] and rec["sources"][0]["name"] == SPECIALIST
    assert rec["sources"][0]["git_commit"] and "success" in rec["success_filter"]
    assert rec["counts"]["can_medium"]["steps"] == ds.n_steps and rec["last_collect"]["episodes_kept"] >= 5
    depth = ds.steps("depth", slice(0, 60))
    assert (
        depth.dtype == np.uint16
        and depth.shape[1:] == (84, 84)
        and 100 <= depth.min()
        and depth.max() <= 2000
    )
    # state holds the true values, obs_state what the specialist saw (low-noise profile: 2 cm object noise).
    ep = ds.episode(0, ["state", "obs_state"])
    err = np.abs(ep["state"][:, 26:29] - ep["obs_state"][:, 26:29])
    assert 0.0 < err.mean() < 0.05


class _Imitation:
    """Closed-loop imitation error: per step, the commanded arm targets vs what the specialist would command
    for the same observation (held idle-arm entries excluded)."""

    def __init__(self) -> None:
        self.specialist = load_policy(SPECIALIST)
        self.prev_obs: np.ndarray | None = None
        self.errors: list[float] = []

    def __call__(self, env) -> None:
        from recipe_common import robot_spec

        applied = env.applied_ctrl[:, env.index.actuator_ids]
        if self.prev_obs is not None:
            want = robot_spec.action_to_joint_targets(self.specialist.predict_batch(self.prev_obs))
            hold = env.task.hold_mask()
            if hold is not None:
                want = np.where(hold.numpy(), applied, want)
            self.errors.append(float(np.abs(want - applied)[:, :14].mean()))
        self.prev_obs = env.get_observations()["policy"].numpy()


def test_tiny_distillation_beats_an_untrained_policy(collected: Path, tmp_path: Path):
    """collect -> train (tiny profile) -> closed-loop eval on the same episodes: the arm targets the trained
    generalist commands are much closer to its specialist's than those of the same network untrained
    (normalizers fitted, weights random)."""
    from recipe_policy.config import load_profile
    from recipe_policy.generalist import load_generalist, save_generalist
    from recipe_policy.runtime import RuntimeConfig
    from recipe_policy.train import Trainer
    from recipe_sim.distill.eval_generalist import evaluate_policy_on_object

    profile = load_profile("tiny").with_changes(**{"training.steps": TINY_STEPS})
    trainer = Trainer(collected, profile, tmp_path / "run", progress=False, threads=1)
    save_generalist(tmp_path / "untrained.safetensors", trainer.ema_weights(), trainer.spec, trainer.record())
    result = trainer.run()
    assert result["loss"] < 0.1  # sample-prediction MSE in normalized units (starts near 0.5)
    error = {}
    for name, path in (
        ("trained", tmp_path / "run" / "policy.safetensors"),
        ("untrained", tmp_path / "untrained.safetensors"),
    ):
        tracker = _Imitation()
        _, stats = evaluate_policy_on_object(
            load_generalist(path),
            "grasp_reach",
            "can_medium",
            randomization_config(False),
            3,
            77,
            RuntimeConfig(),
            0.05,
            threads=1,
            on_step=tracker,
            episode_length=30,
        )
        error[name] = float(np.mean(tracker.errors))
        assert stats.inferences > 0 and stats.rejected == 0
    assert error["trained"] < 0.75 * error["untrained"], error  # measured: 0.028 vs 0.047 rad


def test_dagger_collection_lets_the_learner_act_and_the_specialist_label(tmp_path: Path):
    """With a learner, the generalist's chunks are what the robot is commanded, every episode is kept (none
    of these 0.8 s episodes can succeed), and each recorded action is the specialist's own action for
    what it observed in that state."""
    from recipe_common import robot_spec
    from recipe_policy.dataset import open_dataset
    from recipe_sim.distill.collect import Collector, Learner, learner_from, specialist_source

    commanded: list[np.ndarray] = []

    class Spy(Learner):
        def controller(self, env):
            inner = super().controller(env)

            def act(obs):
                out = inner(obs)
                commanded.append(out.numpy().copy())
                return out

            return act

    source = specialist_source(SPECIALIST, None)
    real = learner_from("grasp_reach", inference_steps=2, latency_s=0.05)
    learner = Spy(real.policy, real.runtime, real.latency_s, real.record)
    out = tmp_path / "dagger.zarr"
    col = Collector(out, "grasp_reach", robot_spec.DEFAULT_HAND, PolicyImageSpec.for_camera(), 4, 1,
                    append=False, overwrite=False, verify_replay=1, progress=False)
    try:
        col.run(source, 32, seed=31, episode_length=8, learner=learner)
    finally:
        col.close()
    assert col.stats.episodes_kept == col.stats.episodes_run == 4 and col.stats.successes_kept == 0
    ds = open_dataset(out, values=True)
    src = ds.record["sources"][0]
    assert src["kind"] == "dagger" and src["labeler"] == SPECIALIST and src["learner"]["ref"] == "grasp_reach"
    # A generalist trained on it knows its specialist (eval_generalist compares against it by default).
    from types import SimpleNamespace

    from recipe_sim.distill.eval_generalist import specialists_of

    trained = SimpleNamespace(record={"dataset": {"sources": ds.record["sources"]}})
    assert specialists_of(trained) == [SPECIALIST]
    ep = ds.episode(0, ["obs_state", "action", "depth"])
    labels = load_policy(SPECIALIST).predict_batch(ep["obs_state"])
    np.testing.assert_allclose(ep["action"], labels, atol=1e-5)
    acted = np.stack(commanded)[:, 0]  # env 0 = episode 0
    assert acted.shape == ep["action"].shape
    assert np.abs(acted[2:, :14] - ep["action"][2:, :14]).max() > 1e-3  # the learner acted, not the labels
    assert ep["depth"].shape == (8, 84, 84) and ep["depth"].min() > 0


def test_an_appended_run_adds_its_source_and_labels_its_episodes_with_it(tmp_path: Path, capsys):
    """``--append``: the new run's source is recorded after the dataset's and its episodes point to it (they
    were once labelled as the dataset's first source, and the new source's record was dropped)."""
    from recipe_common import robot_spec
    from recipe_policy.dataset import open_dataset
    from recipe_sim.distill.collect import Collector, learner_from, specialist_source

    source = specialist_source(SPECIALIST, None)
    learner = learner_from("grasp_reach", inference_steps=2, latency_s=0.05)  # every episode kept: quick
    out = tmp_path / "two_runs.zarr"
    for k, append in enumerate((False, True)):
        col = Collector(out, "grasp_reach", robot_spec.DEFAULT_HAND, PolicyImageSpec.for_camera(), 2, 1,
                        append=append, overwrite=False, verify_replay=0, progress=False)
        try:
            col.run(source, 16, seed=40 + k, episode_length=8, learner=learner)
        finally:
            col.close()
    ds = open_dataset(out)
    assert [s["seed"] for s in ds.record["sources"]] == [40, 41]
    assert ds.episodes("source").tolist() == [0, 0, 1, 1]
    assert ds.record["objects"] == ["can_medium"] and ds.record["counts"]["can_medium"]["episodes"] == 4
    # a run of another task is refused before it collects anything, naming the dataset
    with pytest.raises(ValueError, match=r"two_runs\.zarr: holds grasp_reach/.*, not handover/"):
        Collector(out, "handover", robot_spec.DEFAULT_HAND, PolicyImageSpec.for_camera(), 2, 1,
                  append=True, overwrite=False, verify_replay=0, progress=False)
    from recipe_sim.distill.collect import main as collect_main

    assert collect_main(["--task", "handover", "--expert", "handover_block", "--steps", "8", "--append",
                         "--out", str(out)]) == 1
    assert "collect: error:" in capsys.readouterr().err and open_dataset(out).n_episodes == 4


def test_a_specialist_trained_behind_an_object_filter_is_served_filtered_rows_in_collection_and_eval(
    tmp_path: Path,
):
    import json
    import shutil

    from recipe_sim.distill.collect import specialist_source
    from recipe_sim.distill.eval_generalist import env_overrides
    from recipe_sim.ppo.packaged import SPECIALISTS_DIR

    folder = tmp_path / "filtered"
    shutil.copytree(SPECIALISTS_DIR / SPECIALIST, folder)
    for name in ("metadata.json", "policy.json"):
        record = json.loads((folder / name).read_text())
        record["object_pos_filter"] = 0.5
        (folder / name).write_text(json.dumps(record))
    source = specialist_source(str(folder), None)
    assert source.task_overrides == {"object_pos_filter": 0.5} and source.record["object_pos_filter"] == 0.5
    assert env_overrides(load_policy(folder), 40) == {
        "init_states": None, "object_pos_filter": 0.5, "episode_length": 40}
    # Older packages (no record): raw readings, whatever tasks.yaml says today.
    assert specialist_source(SPECIALIST, None).task_overrides == {"object_pos_filter": 0.0}
    assert env_overrides(load_policy(SPECIALIST))["object_pos_filter"] == 0.0


def test_eval_generalist_scores_objects_in_one_order_whatever_order_the_dataset_recorded():
    """Object k runs on seed + k: two generalists of one task must get the same episodes under one seed."""
    from types import SimpleNamespace

    from recipe_sim.distill.eval_generalist import default_objects

    first = SimpleNamespace(spec=SimpleNamespace(objects=("lift_box_wide", "lift_box_small", "lift_box")))
    second = SimpleNamespace(spec=SimpleNamespace(objects=("lift_box_small", "lift_box_wide", "lift_box")))
    expected = ["lift_box", "lift_box_small", "lift_box_wide"]
    assert default_objects(first) == default_objects(second) == expected
