"""Checkpoints and export on a real (tiny) training run: reload, metadata, TorchScript/ONNX, bad files."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recipe_sim.ppo.checkpoint import (
    REQUIRED_METADATA_KEYS,
    REQUIRED_METRICS,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    read_metadata,
)
from recipe_sim.ppo.config import load_config
from recipe_sim.ppo.envs import make_env, randomization_config, resolve_subtasks
from recipe_sim.ppo.evaluation import load_actor
from recipe_sim.ppo.export import ExportError, load_exported_policy, torch_actor_actions, verify_export
from recipe_sim.ppo.runner import RunInfo, SpecialistRunner

SUB = resolve_subtasks("grasp_reach", "single:cube_small")[0]
# Raw object readings (tasks.yaml filters grasp_reach's): the fixture's runner records no weight, as
# checkpoints from before the filter did, and its tests load it into envs built with these overrides.
OVERRIDES = {"episode_length": 16, "object_pos_filter": 0.0}


def _env(seed: int = 0):
    # Randomization on: the normalizer then sees noisy joint readings, like a real run.
    return make_env(SUB, 4, seed, randomization_config(True), task_overrides=OVERRIDES)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A runner after 3 tiny iterations (checkpoints at 0, 2 and the final 2), left open for the tests."""
    run_dir = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    cfg = load_config(profile="tiny").with_overrides(num_envs=4, num_steps_per_env=8, iterations=3)
    env = _env()
    runner = SpecialistRunner(
        env,
        cfg,
        run_dir,
        RunInfo(SUB.task, SUB.label, SUB.objects, seed=0, extra={"task_overrides": OVERRIDES}),
    )
    runner.train(cfg.iterations)
    yield runner, run_dir, cfg
    env.close()


def test_metadata_has_the_required_fields(trained):
    runner, run_dir, _ = trained
    ckpt = latest_checkpoint(run_dir)
    assert ckpt.name == "model_2.pt"
    meta = read_metadata(ckpt)
    assert set(REQUIRED_METADATA_KEYS) <= set(meta) and set(REQUIRED_METRICS) <= set(meta["metrics"])
    assert meta["task"] == "grasp_reach" and meta["object_group"] == "single:cube_small"
    assert meta["objects"] == ["cube_small"] and meta["seed"] == 0 and meta["iteration"] == 2
    assert meta["config"]["profile"] == "tiny" and meta["config"]["num_envs"] == 4
    assert meta["metrics"]["env_steps"] == 3 * 4 * 8 and meta["metrics"]["wall_time_s"] > 0
    assert meta["git_commit"] is None or len(meta["git_commit"]) == 40
    assert meta["obs_dim"] == int(runner.actor.obs_dim) and meta["num_actions"] == 26
    assert read_metadata(run_dir / "model_0.pt")["iteration"] == 0


def test_checkpoint_reloads_to_the_same_actions(trained):
    runner, run_dir, _ = trained
    obs = runner.env.get_observations()
    expected = runner.act(obs)
    torch.manual_seed(123)  # a different initialisation that the load must overwrite
    env = _env(seed=5)
    try:
        actor, meta = load_actor(run_dir / "model_2.pt", env)
        with torch.no_grad():
            got = actor(obs)
    finally:
        env.close()
    assert meta["iteration"] == 2
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # The normalizer statistics came along (not the identity of a fresh model).
    assert not torch.allclose(actor.obs_normalizer._mean, torch.zeros_like(actor.obs_normalizer._mean))


def test_exported_torchscript_and_onnx_match_the_torch_actor(trained, tmp_path: Path):
    runner, _, _ = trained
    obs = runner.env.get_observations()["policy"]
    files, diffs = runner.export(tmp_path / "exported")
    assert set(diffs) == {"torchscript", "onnx"} and max(diffs.values()) < 1e-5
    expected = torch_actor_actions(runner.actor, obs).numpy()
    for path in (files.torchscript, files.onnx):
        policy = load_exported_policy(path)
        assert policy.obs_dim == obs.shape[1] and policy.action_dim == 26
        np.testing.assert_allclose(policy(obs.numpy()), expected, atol=1e-5)
        np.testing.assert_allclose(policy(obs.numpy()[0]), expected[0], atol=1e-5)  # single observation
        with pytest.raises(ValueError, match="obs_dim"):
            policy(np.zeros((2, obs.shape[1] + 1)))
        with pytest.raises(ValueError, match="NaN"):
            policy(np.full(obs.shape[1], np.nan))
    # The TorchScript archive loads with the C++ loader, not Python's unpickler (no code runs).
    info = json.loads(files.info.read_text())
    assert info["task"] == "grasp_reach" and info["obs_dim"] == obs.shape[1]


def test_verify_export_catches_a_mismatch(trained, tmp_path: Path):
    runner, _, _ = trained
    files, _ = runner.export(tmp_path / "a")
    other = tmp_path / "b"
    shutil.copytree(tmp_path / "a", other)
    # Perturb the live actor: the files no longer match it.
    last = [m for m in runner.actor.mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias += 0.1
    try:
        with pytest.raises(ExportError, match="differ"):
            verify_export(runner.actor, files)
    finally:
        with torch.no_grad():
            last.bias -= 0.1
    with pytest.raises(ExportError, match="unknown policy format"):
        load_exported_policy(files.info)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="not a loadable ONNX"):
        load_exported_policy(bad)


def test_corrupted_and_foreign_checkpoints_give_clear_errors(trained, tmp_path: Path):
    _, run_dir, _ = trained
    good = run_dir / "model_2.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: not a readable PPO checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable PPO checkpoint"):
        load_checkpoint(garbage)

    class Payload:  # would run code on unpickling with weights_only=False
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    buf = io.BytesIO()
    torch.save({"actor_state_dict": Payload()}, buf)
    evil.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(evil)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_mismatched_checkpoint_and_metadata_are_rejected(trained, tmp_path: Path):
    runner, run_dir, _ = trained
    state = load_checkpoint(run_dir / "model_2.pt")
    name = next(k for k in state["actor_state_dict"] if k.endswith("weight"))
    state["actor_state_dict"][name] = torch.zeros(3, 3)
    wrong = tmp_path / "model_9.pt"
    torch.save(state, wrong)
    with pytest.raises(CheckpointError, match=f"'{name}' has shape"):
        runner.load(str(wrong))
    # Metadata copied next to another checkpoint: the hash check catches it.
    shutil.copy(run_dir / "model_2.metadata.json", tmp_path / "model_9.metadata.json")
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_metadata(wrong)
    (tmp_path / "model_9.metadata.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="malformed JSON"):
        read_metadata(wrong)
    nan_state = load_checkpoint(run_dir / "model_2.pt")
    nan_state["actor_state_dict"][name] = torch.full_like(nan_state["actor_state_dict"][name], float("nan"))
    torch.save(nan_state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(tmp_path / "nan.pt")


def test_resume_continues_the_iteration_count(trained, tmp_path: Path):
    _, run_dir, cfg = trained
    env = _env(seed=1)
    try:
        runner = SpecialistRunner(env, cfg, tmp_path, RunInfo(SUB.task, SUB.label, SUB.objects, seed=1))
        runner.load(str(run_dir / "model_2.pt"))
        assert runner.current_learning_iteration == 3
        history = runner.train(2)
    finally:
        env.close()
    assert [s.iteration for s in history] == [3, 4]
    assert history[-1].env_steps == (3 + 2) * 4 * 8
    assert read_metadata(tmp_path / "model_4.pt")["iteration"] == 4


def test_eval_cli_writes_json_and_chart(trained, tmp_path: Path):
    from recipe_sim.evaluate import main as eval_main

    _, run_dir, _ = trained
    out = tmp_path / "eval"
    args = ["--checkpoint", str(run_dir / "model_2.pt"), "--episodes", "3", "--num-envs", "2"]
    assert eval_main([*args, "--conditions", "nominal", "pushes", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["task"] == "grasp_reach" and report["iteration"] == 2
    for condition in ("nominal", "pushes"):
        row = report["conditions"][condition]["cube_small"]
        assert row["episodes"] == 3 and 0.0 <= row["success_rate"] <= 1.0
        assert row["mean_length"] <= OVERRIDES["episode_length"]  # the checkpoint's task overrides were used
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["start"] == "ready" and report["randomization"] == "config/randomization.yaml"
    assert eval_main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(out)]) == 1
    assert eval_main([*args, "--randomization", str(tmp_path / "none.yaml"), "--out", str(out)]) == 1


def test_package_specialist_copies_a_consistent_record(trained, tmp_path: Path):
    from recipe_sim.evaluate import main as eval_main
    from recipe_sim.ppo.packaged import load_specialist, package_specialist

    runner, run_dir, _ = trained
    runner.export(run_dir / "exported")  # the export of the last checkpoint, model_2, as train writes it
    ckpt = run_dir / "model_2.pt"
    out = tmp_path / "eval"
    assert eval_main(["--checkpoint", str(ckpt), "--episodes", "2", "--num-envs", "2",
                      "--conditions", "nominal", "--out", str(out)]) == 0
    root = tmp_path / "specialists"
    dest = package_specialist(ckpt, out / "eval.json", "tiny_cube", root=root)
    spec = load_specialist("tiny_cube", root=root)
    assert spec.metadata["iteration"] == 2 and spec.success_rate("nominal") is not None
    obs = runner.env.get_observations()["policy"].numpy()
    np.testing.assert_allclose(spec.policy("onnx")(obs), spec.policy("ts")(obs), atol=1e-5)
    with pytest.raises(ValueError, match="different checkpoints"):  # an older checkpoint than the export
        package_specialist(run_dir / "model_0.pt", out / "eval.json", "old", root=root)
    # An earlier checkpoint, evaluated on its own, is exported next to the run before packaging.
    out0 = tmp_path / "eval0"
    assert eval_main(["--checkpoint", str(run_dir / "model_0.pt"), "--episodes", "2", "--num-envs", "2",
                      "--conditions", "nominal", "--out", str(out0)]) == 0
    package_specialist(run_dir / "model_0.pt", out0 / "eval.json", "tiny_cube_0", root=root)
    early = load_specialist("tiny_cube_0", root=root)
    assert early.metadata["iteration"] == 0 and (run_dir / "exported_0" / "policy.ts").is_file()
    assert not np.allclose(early.policy("ts")(obs), spec.policy("ts")(obs))  # another policy than model_2's
    (dest / "policy.json").write_text("{not json")
    with pytest.raises(ValueError, match="malformed JSON"):
        load_specialist("tiny_cube", root=root)
    with pytest.raises(FileNotFoundError, match="no packaged specialist"):
        load_specialist("missing", root=root)


def test_thin_curve_keeps_the_ends_and_at_most_the_asked_points():
    from recipe_sim.ppo.packaged import thin_curve

    curve = {"task": "t", "iterations": [{"iteration": i} for i in range(2000)]}
    thin = thin_curve(curve, 200)
    its = [r["iteration"] for r in thin["iterations"]]
    assert its[0] == 0 and its[-1] == 1999 and len(its) <= 201 and its == sorted(its)
    assert thin_curve({"iterations": [{"iteration": 0}]}, 200)["iterations"] == [{"iteration": 0}]


def test_the_committed_grasp_reach_specialist_loads_and_acts():
    """The packaged specialist (data/specialists/grasp_reach_can_medium) that later stages start from."""
    from recipe_sim.ppo.envs import make_env, randomization_config, resolve_subtasks
    from recipe_sim.ppo.packaged import load_specialist

    spec = load_specialist("grasp_reach_can_medium")
    assert spec.metadata["task"] == "grasp_reach" and spec.metadata["objects"] == ["can_medium"]
    assert spec.metadata["demo_init"]["episodes_kept"] > 0  # trained with train --demo-init
    assert spec.eval_report["start"] == "ready" and spec.success_rate("randomized") > 0
    (sub,) = resolve_subtasks("grasp_reach", "single:can_medium")
    env = make_env(sub, 2, 0, randomization_config(False), no_init_states=True)
    try:
        obs = env.get_observations()["policy"].numpy()
    finally:
        env.close()
    ts, onnx = spec.policy("ts")(obs), spec.policy("onnx")(obs)
    assert ts.shape == (2, 26) and np.isfinite(ts).all()
    np.testing.assert_allclose(onnx, ts, atol=1e-4)


def test_nan_in_the_optimizer_state_is_refused_naming_the_file(trained, tmp_path: Path):
    _, run_dir, _ = trained
    state = load_checkpoint(run_dir / "model_2.pt")
    moments = state["optimizer_state_dict"]["state"]
    first = next(iter(moments))
    moments[first]["exp_avg"] = torch.full_like(moments[first]["exp_avg"], float("nan"))
    torch.save(state, tmp_path / "model_2.pt")
    with pytest.raises(CheckpointError, match=rf"model_2\.pt: optimizer_state_dict\.state\.{first}\.exp_avg "
                                              r"contains NaN or inf .*resume from an earlier checkpoint"):
        load_checkpoint(tmp_path / "model_2.pt")
    state = load_checkpoint(run_dir / "model_2.pt")
    state["optimizer_state_dict"]["param_groups"][0]["lr"] = float("nan")
    torch.save(state, tmp_path / "lr.pt")
    with pytest.raises(CheckpointError, match=r"lr\.pt: optimizer_state_dict\.param_groups\[0\]\.lr is nan"):
        load_checkpoint(tmp_path / "lr.pt")


def test_resume_from_a_diverged_checkpoint_fails_cleanly_without_a_run_dir(trained, tmp_path: Path, capsys):
    from recipe_sim.train import main as train_main

    _, run_dir, _ = trained
    state = load_checkpoint(run_dir / "model_2.pt")
    for moment in state["optimizer_state_dict"]["state"].values():
        moment["exp_avg_sq"] = torch.full_like(moment["exp_avg_sq"], float("inf"))
    torch.save(state, tmp_path / "model_2.pt")
    out = tmp_path / "resumed"
    args = ["--task", "grasp_reach", "--group", "single:cube_small", "--profile", "tiny", "--num-envs", "4",
            "--iterations", "1", "--resume", str(tmp_path / "model_2.pt"), "--out", str(out)]
    assert train_main(args) == 1
    err = capsys.readouterr().err
    assert "model_2.pt: optimizer_state_dict" in err and "Traceback" not in err
    assert not out.exists()


def test_exported_policy_with_a_nan_weight_is_refused(trained, tmp_path: Path):
    from recipe_sim.ppo.export import export_actor

    runner, _, _ = trained
    weight = next(p for n, p in runner.actor.named_parameters() if n.endswith("weight"))
    saved = float(weight[0, 0].detach())
    try:
        with torch.no_grad():
            weight[0, 0] = float("nan")
        files = export_actor(runner.actor, tmp_path / "nan", info={"task": "grasp_reach"})
    finally:
        with torch.no_grad():
            weight[0, 0] = saved
    with pytest.raises(ExportError, match=r"policy\.ts: tensor '.*' contains NaN or inf"):
        load_exported_policy(files.torchscript)
    with pytest.raises(ExportError, match=r"policy\.onnx: the policy returned NaN or inf actions"):
        load_exported_policy(files.onnx)


def test_bad_policy_sidecar_gives_a_clear_error(trained, tmp_path: Path):
    runner, _, _ = trained
    files, _ = runner.export(tmp_path / "exported")
    files.info.write_text("[1, 2]\n")
    with pytest.raises(ExportError, match=r"policy\.json: expected a JSON object, got list"):
        load_exported_policy(files.torchscript)
    files.info.write_text(json.dumps({"format": "recipe_sim/exported_policy/v1", "obs_dim": -3}))
    with pytest.raises(ExportError, match=r"'obs_dim' must be a positive integer, got -3"):
        load_exported_policy(files.onnx)


def test_eval_errors_are_clean_and_leave_no_directory(trained, tmp_path: Path, capsys):
    from recipe_sim.evaluate import main as eval_main

    _, run_dir, _ = trained
    bad = tmp_path / "bad_randomization.yaml"
    bad.write_text("format: recipe_sim/randomization/v1\nkp_scale: {range: [-1.0, 1.0]}\n")
    out = tmp_path / "eval"
    base = ["--checkpoint", str(run_dir / "model_2.pt"), "--episodes", "2", "--num-envs", "2",
            "--out", str(out)]
    assert eval_main([*base, "--randomization", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad_randomization.yaml: kp_scale.range[0] must be in (0, 5]" in err and "Traceback" not in err
    assert eval_main([*base, "--objects", "teapot"]) == 1
    assert "unknown object(s) ['teapot']" in capsys.readouterr().err
    assert eval_main([*base, "--force-probability", "1.5"]) == 2
    state = load_checkpoint(run_dir / "model_2.pt")
    state["actor_state_dict"] = {k: v[..., :1] if v.ndim else v for k, v in state["actor_state_dict"].items()}
    shutil.copy(run_dir / "model_2.metadata.json", tmp_path / "model_2.metadata.json")
    torch.save(state, tmp_path / "model_2.pt")
    assert eval_main(["--checkpoint", str(tmp_path / "model_2.pt"), "--episodes", "2", "--num-envs", "2",
                      "--out", str(out)]) == 1
    assert not out.exists()


def test_an_actor_is_only_loaded_into_an_env_with_the_object_filter_it_was_trained_behind(trained):
    from recipe_sim.ppo.envs import recorded_task_overrides

    _, run_dir, _ = trained
    ckpt = latest_checkpoint(run_dir)
    meta = read_metadata(ckpt)
    assert "object_pos_filter" not in meta  # a checkpoint from before the filter was recorded: raw readings
    assert recorded_task_overrides(meta) == {**OVERRIDES, "object_pos_filter": 0.0}
    assert recorded_task_overrides({**meta, "object_pos_filter": 0.85})["object_pos_filter"] == 0.85
    filtered = make_env(SUB, 2, 0, randomization_config(False),
                        task_overrides={**OVERRIDES, "object_pos_filter": 0.5})
    try:
        match = r"trained behind object_pos_filter 0\.0, but the env applies 0\.5"
        with pytest.raises(ValueError, match=match):
            load_actor(ckpt, filtered)
    finally:
        filtered.close()
    env = make_env(SUB, 2, 0, randomization_config(False), task_overrides=recorded_task_overrides(meta))
    try:
        load_actor(ckpt, env)
    finally:
        env.close()


def test_a_run_is_not_resumed_behind_another_object_filter(trained):
    from recipe_sim.ppo.training import check_resume_compatible

    _, run_dir, _ = trained
    ckpt = latest_checkpoint(run_dir)
    check_resume_compatible(ckpt, SUB, 0.0)
    with pytest.raises(CheckpointError, match=r"object_pos_filter 0\.0, this run's env applies 0\.85"):
        check_resume_compatible(ckpt, SUB, 0.85)
