"""load_policy: specialists (name, folder, exported file) and generalists, without recipe_sim; bad refs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from recipe_common.checkpoint_io import CheckpointError
from recipe_common.observation import policy_state
from recipe_common.policy_image import PolicyImageSpec
from recipe_policy.config import load_profile
from recipe_policy.diffusion_model import DiffusionPolicyModel
from recipe_policy.generalist import depth_spec_for, load_generalist, policy_spec_for, save_generalist
from recipe_policy.interface import DeployablePolicy
from recipe_policy.loading import PolicyLoadError, load_policy, resolve

SPECIALIST = "grasp_reach_can_medium"


def _state() -> np.ndarray:
    q = np.zeros(26)
    q[14:] = 0.1
    return policy_state(q, np.array([0.3, 0.05, 0.8]), np.array([0.3, 0.1, 0.95]))


def test_a_packaged_specialist_loads_by_name_folder_and_exported_file():
    pol = load_policy(SPECIALIST)
    assert isinstance(pol, DeployablePolicy)
    s = pol.spec
    assert (s.kind, s.task, s.objects, s.has_goal, s.uses_depth) == (
        "specialist",
        "grasp_reach",
        ("can_medium",),
        True,
        False,
    )
    assert (s.n_obs_steps, s.action_horizon, s.action_dt, s.inference_period) == (1, 1, 0.1, 0.1)
    a = pol.predict(_state()[None], None)
    assert a.shape == (1, 26) and a.dtype == np.float64 and np.isfinite(a).all()
    folder = resolve(SPECIALIST)
    np.testing.assert_allclose(load_policy(folder).predict(_state()[None], None), a)
    onnx = load_policy(folder / "policy.onnx")
    np.testing.assert_allclose(onnx.predict(_state()[None], None), a, atol=1e-4)
    with pytest.raises(ValueError, match="n_obs_steps=1"):
        pol.predict(np.zeros((2, 32)), None)


def test_bad_refs_say_what_is_wrong(tmp_path: Path):
    with pytest.raises(PolicyLoadError, match="no policy 'nope'"):
        load_policy("nope")
    ckpt = tmp_path / "model_10.pt"
    ckpt.write_bytes(b"x")
    with pytest.raises(PolicyLoadError, match="not deployable"):
        load_policy(ckpt)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyLoadError, match="neither"):
        load_policy(tmp_path / "empty")
    bad = tmp_path / "g.safetensors"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_policy(bad)


def _tiny_generalist(tmp_path: Path, use_object_pos: bool = True) -> tuple[Path, DiffusionPolicyModel]:
    torch.manual_seed(0)
    profile = load_profile("tiny").with_changes(use_object_pos=use_object_pos)
    head = PolicyImageSpec.for_camera()
    model = DiffusionPolicyModel(profile, True, (head.near_m, head.far_m))
    rng = np.random.default_rng(0)
    model.state_norm.fit(rng.normal(size=(50, 32)))
    model.action_norm.fit(rng.uniform(size=(50, 26)))
    spec = policy_spec_for(
        profile, "grasp_reach", "fourier", ["can_medium"], True, depth_spec_for(profile, head)
    )
    return save_generalist(tmp_path / "policy.safetensors", model, spec, {"note": "test"}), model


def test_a_generalist_round_trips_weights_normalizers_and_spec(tmp_path: Path):
    _, model = _tiny_generalist(tmp_path)
    pol = load_policy(tmp_path)  # the folder holding policy.safetensors
    assert pol.spec.kind == "diffusion" and pol.spec.uses_depth and pol.spec.depth.width == 21
    assert pol.record["note"] == "test"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(pol.model.state_dict()[k], v)
    n, h = pol.spec.n_obs_steps, pol.spec.depth.height
    states = np.tile(_state(), (n, 1))
    depths = np.full((n, h, h), 0.8, np.float32)
    a = pol.predict(states, depths)
    assert a.shape == (pol.spec.action_horizon, 26) and np.isfinite(a).all()
    with pytest.raises(ValueError, match="depths"):
        pol.predict(states, None)
    with pytest.raises(ValueError, match="NaN"):
        pol.predict(states, np.full((n, h, h), np.nan, np.float32))
    # the sampler is a load-time choice (the node's config), not baked into the weights
    det = load_policy(tmp_path, inference_steps=2, initial_noise_scale=0.0, timestep_spacing="trailing")
    assert det.model.sampling()["inference_steps"] == 2 and det.model.sampling()["initial_noise_scale"] == 0.0
    assert det.model.sampling()["timestep_spacing"] == "trailing"
    np.testing.assert_array_equal(det.predict(states, depths), det.predict(states, depths))


def test_a_corrupt_or_truncated_generalist_is_refused(tmp_path: Path):
    path, _ = _tiny_generalist(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors"):
        load_generalist(cut)
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state["unet.head.1.bias"] = torch.full_like(state["unet.head.1.bias"], float("nan"))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    nan = tmp_path / "nan.safetensors"
    save_file(state, str(nan), metadata=meta)
    with pytest.raises(CheckpointError, match="NaN"):
        load_generalist(nan)


def test_the_loader_and_runtime_import_without_recipe_sim(tmp_path: Path):
    path, _ = _tiny_generalist(tmp_path)
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class _Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "recipe_sim" or name.startswith("recipe_sim."):
                    raise ModuleNotFoundError(name)
                return None
        sys.meta_path.insert(0, _Hide())
        from recipe_policy.loading import load_policy
        from recipe_policy.runtime import ActionChunkRuntime
        g = load_policy({str(path)!r})
        ActionChunkRuntime(g.spec)
        assert "mujoco" not in sys.modules and "recipe_sim" not in sys.modules
        print("ok")
    """)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_a_float16_copy_loads_as_float32_with_the_same_record(tmp_path: Path):
    from recipe_policy.generalist import main as generalist_main

    path, model = _tiny_generalist(tmp_path)
    half = tmp_path / "half.safetensors"
    assert generalist_main([str(path), str(half), "--half"]) == 0
    assert half.stat().st_size < 0.6 * path.stat().st_size
    pol = load_generalist(half)
    assert pol.record["weights_dtype"] == "float16" and pol.record["note"] == "test"
    assert pol.record["converted_from"]["path"] == str(path)
    for k, v in model.state_dict().items():
        got = pol.model.state_dict()[k]
        assert got.dtype == v.dtype
        torch.testing.assert_close(got, v, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(pol.model.action_norm.half_range, model.action_norm.half_range)  # exact


def test_the_committed_grasp_reach_generalist_loads_by_name_and_acts():
    pol = load_policy("grasp_reach")
    s = pol.spec
    assert (s.kind, s.task, s.objects, s.uses_depth, s.uses_object_pos) == (
        "diffusion",
        "grasp_reach",
        ("can_medium",),
        True,
        True,
    )
    assert (s.n_obs_steps, s.action_horizon, s.action_dt, s.inference_period) == (2, 8, 0.1, 0.2)
    assert pol.record["weights_dtype"] == "float16" and pol.record["training"]["step"] == 20000
    assert "grasp_reach_can_medium" in [src["name"] for src in pol.record["dataset"]["sources"]]
    depths = np.full((2, s.depth.height, s.depth.width), 0.8, np.float32)
    a = pol.predict(np.tile(_state(), (2, 1)), depths)
    assert a.shape == (8, 26) and np.isfinite(a).all()


def test_the_committed_box_lift_generalist_loads_by_name_and_acts_with_both_hands():
    pol = load_policy("box_lift_generalist")
    s = pol.spec
    assert (s.kind, s.task, s.uses_depth, s.uses_object_pos) == ("diffusion", "box_lift", True, True)
    assert set(s.objects) == {"lift_box", "lift_box_small", "lift_box_wide"}
    assert pol.record["weights_dtype"] == "float16" and pol.record["training"]["step"] == 16000
    assert pol.record["profile"]["diffusion"]["timestep_spacing"] == "trailing"
    assert [src["name"] for src in pol.record["dataset"]["sources"]] == ["box_lift"]
    depths = np.full((2, s.depth.height, s.depth.width), 0.8, np.float32)
    a = pol.predict(np.tile(_state(), (2, 1)), depths)
    assert a.shape == (8, 26) and np.isfinite(a).all()


def test_the_committed_handover_generalist_loads_by_name_and_names_both_its_sources():
    pol = load_policy("handover_generalist")
    s = pol.spec
    assert (s.kind, s.task, s.uses_depth, s.uses_object_pos, s.has_goal) == (
        "diffusion", "handover", True, True, True)
    assert set(s.objects) == {"handover_block", "handover_block_slim", "handover_block_wide"}
    assert pol.record["weights_dtype"] == "float16" and pol.record["training"]["step"] == 12000
    # distilled from the packaged clone's and the scripted expert's successful rollouts (REBUILD.md)
    assert [src["kind"] for src in pol.record["dataset"]["sources"]] == ["specialist", "scripted_expert"]
    depths = np.full((2, s.depth.height, s.depth.width), 0.8, np.float32)
    a = pol.predict(np.tile(_state(), (2, 1)), depths)
    assert a.shape == (8, 26) and np.isfinite(a).all()


def test_no_committed_generalist_shadows_a_specialist_of_the_same_name():
    """Names resolve generalists first: a generalist named like a specialist would hide it (from
    config/deploy.yaml, and from eval_generalist's comparison with the specialists a dataset names)."""
    from recipe_policy.loading import GENERALISTS_DIR, search_roots

    generalists = {p.name for p in GENERALISTS_DIR.iterdir() if p.is_dir()}
    specialist_roots = [r for r in search_roots() if r.name == "specialists"]
    assert specialist_roots, "recipe_sim's specialists are not on the search path"
    specialists = {p.name for r in specialist_roots for p in r.iterdir() if p.is_dir()}
    assert generalists and specialists
    assert not generalists & specialists, generalists & specialists


def _with_filter(tmp_path: Path, weight_meta: float, weight_info: float) -> Path:
    """A copy of the committed specialist whose record says it was trained behind an object filter."""
    import json
    import shutil

    folder = tmp_path / "filtered"
    shutil.copytree(resolve(SPECIALIST), folder)
    for name, weight in (("metadata.json", weight_meta), ("policy.json", weight_info)):
        record = json.loads((folder / name).read_text())
        record["object_pos_filter"] = weight
        (folder / name).write_text(json.dumps(record))
    return folder


def test_a_specialist_trained_behind_an_object_filter_applies_it_in_predict_and_restarts_it_at_reset(
    tmp_path: Path,
):
    assert load_policy(SPECIALIST).spec.object_pos_filter == 0.0  # packages from before the filter: raw
    pol = load_policy(_with_filter(tmp_path, 0.5, 0.5))
    assert pol.spec.object_pos_filter == 0.5
    a, b = _state(), _state()
    b[26:29] += [0.04, -0.02, 0.01]
    blend = 0.5 * a + 0.5 * b
    direct = load_policy(SPECIALIST)
    np.testing.assert_allclose(pol.predict(a[None]), direct.predict(a[None]), atol=1e-6)  # first: as it is
    np.testing.assert_allclose(pol.predict(b[None]), direct.predict(blend[None]), atol=1e-6)
    pol.reset()
    np.testing.assert_allclose(pol.predict(b[None]), direct.predict(b[None]), atol=1e-6)


def test_a_specialist_whose_files_disagree_on_the_object_filter_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match=r"object_pos_filter is 0\.85 in metadata\.json but 0\.0"):
        load_policy(_with_filter(tmp_path, 0.85, 0.0))
