"""The generalist's network, profiles, augmentation and training loop (EMA, normalizers, resume)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from recipe_common.config import ConfigError
from recipe_common.paths import config_path
from recipe_common.policy_image import PolicyImageSpec
from recipe_policy.augment import augment_depth, augment_state
from recipe_policy.config import load_profile, profile_from_dict, profile_names
from recipe_policy.dataset import Field, create_dataset
from recipe_policy.diffusion_model import DiffusionPolicyModel, state_columns
from recipe_policy.train import STATE_FILE, Trainer
from recipe_policy.training_data import state_slices
from recipe_policy.unet1d import ConditionalUnet1D, Conv1d

HEAD = PolicyImageSpec.for_camera()


def test_profiles_extend_the_paper_and_bad_keys_are_named(tmp_path: Path):
    assert {"paper", "cpu", "tiny"} <= set(profile_names())
    paper, cpu = load_profile("paper"), load_profile("cpu")
    assert paper.diffusion.train_steps == 100 and paper.diffusion.beta_schedule == "squaredcos_cap_v2"
    assert paper.state_mlp.hidden_dims == (512, 512, 512) and paper.state_mlp.feature_dim == 64
    assert paper.state_mlp.activation == "elu" and paper.encoder.widths == (64, 128, 256, 512)
    assert (paper.training.learning_rate, paper.training.weight_decay, paper.training.batch_size) == (
        1e-4,
        1e-5,
        128,
    )
    assert cpu.n_obs_steps == paper.n_obs_steps and cpu.augmentation == paper.augmentation  # inherited
    text = config_path("policy.yaml").read_text()
    bad = tmp_path / "policy.yaml"
    bad.write_text(text.replace("    horizon: 16", "    horizon: 16\n    horizn: 8", 1))
    with pytest.raises(ConfigError, match=r"policy.yaml.*profiles.paper.*horizn"):
        load_profile("paper", bad)
    bad.write_text(text.replace("    horizon: 16", "    horizon: 18", 1))
    with pytest.raises(ConfigError, match="multiple of 4"):
        load_profile("paper", bad)
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("gpu")
    # training.state_key: checked; records written before it existed (no key) read as the true state.
    assert paper.training.state_key == "state"
    with pytest.raises(ConfigError, match="state_key must be one of"):
        cpu.with_changes(**{"training.state_key": "noisy"})
    old = cpu.to_dict()
    del old["training"]["state_key"]
    assert profile_from_dict({k: v for k, v in old.items() if k != "name"}, "cpu") == cpu


def test_the_paper_profile_builds_and_takes_a_training_step():
    torch.manual_seed(0)
    prof = load_profile("paper")
    model = DiffusionPolicyModel(prof, True, (HEAD.near_m, HEAD.far_m))
    model.state_norm.fit(np.random.default_rng(0).normal(size=(10, 32)))
    model.action_norm.fit(np.random.default_rng(1).uniform(size=(10, 26)))
    n_enc = sum(p.numel() for p in model.encoder.depth_net.parameters())
    assert 11.1e6 < n_enc < 11.5e6  # ResNet-18 (GroupNorm) trunk
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    s = torch.randn(2, prof.n_obs_steps, 32)
    d = torch.rand(2, prof.n_obs_steps, prof.image.height, prof.image.width) + 0.5
    a = torch.rand(2, prof.horizon, 26)
    loss = model.loss(s, d, a)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_depth_only_drops_the_object_position():
    cols = state_columns(True, False)
    assert len(cols) == 29 and not set(range(26, 29)) & set(cols)
    prof = load_profile("tiny").with_changes(use_object_pos=False)
    model = DiffusionPolicyModel(prof, True, (HEAD.near_m, HEAD.far_m)).eval()
    s = torch.zeros(1, prof.n_obs_steps, 32)
    d = torch.full((1, prof.n_obs_steps, 21, 21), 0.8)
    s2 = s.clone()
    s2[..., 26:29] += 0.3
    torch.testing.assert_close(model.condition(s, d), model.condition(s2, d))
    s3 = s.clone()
    s3[..., 0] += 0.3
    assert not torch.allclose(model.condition(s, d), model.condition(s3, d))


def test_fewer_ddim_steps_at_deployment_and_bad_counts_named():
    prof = load_profile("tiny")
    model = DiffusionPolicyModel(prof, True, (HEAD.near_m, HEAD.far_m)).eval()
    assert len(model.infer_scheduler.timesteps) == prof.diffusion.inference_steps
    model.set_inference_steps(2)
    assert len(model.infer_scheduler.timesteps) == 2
    s = torch.zeros(1, prof.n_obs_steps, 32)
    d = torch.full((1, prof.n_obs_steps, 21, 21), 0.8)
    assert torch.isfinite(model.sample(s, d)).all()
    with pytest.raises(ValueError, match="inference steps must be in 1"):
        model.set_inference_steps(0)


def test_initial_noise_scale_zero_gives_one_chunk_per_window_and_old_records_read_as_one():
    prof = load_profile("tiny")
    assert prof.diffusion.initial_noise_scale == 1.0
    model = DiffusionPolicyModel(prof, True, (HEAD.near_m, HEAD.far_m))
    model.state_norm.fit(np.random.default_rng(0).normal(size=(10, 32)))
    model.action_norm.fit(np.random.default_rng(1).uniform(size=(10, 26)))
    model.eval()
    s = torch.randn(1, prof.n_obs_steps, 32)
    d = torch.full((1, prof.n_obs_steps, 21, 21), 0.8)

    def two_draws() -> tuple[torch.Tensor, torch.Tensor]:
        return (model.sample(s, d, torch.Generator().manual_seed(1)),
                model.sample(s, d, torch.Generator().manual_seed(2)))

    a, b = two_draws()
    assert not torch.allclose(a, b)  # the textbook sampler: a fresh chunk per draw
    model.set_initial_noise_scale(0.0)
    a, b = two_draws()
    torch.testing.assert_close(a, b)  # DDIM from the prior's mean: deterministic
    assert model.sampling() == {"sampler": "ddim", "inference_steps": prof.diffusion.inference_steps,
                                "timestep_spacing": "trailing", "initial_noise_scale": 0.0}
    with pytest.raises(ValueError, match=r"initial noise scale must be in \[0, 1\]"):
        model.set_initial_noise_scale(1.5)
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=r"diffusion\.initial_noise_scale must be"):
            prof.with_changes(**{"diffusion.initial_noise_scale": bad})
    old = prof.to_dict()
    del old["diffusion"]["initial_noise_scale"]
    assert profile_from_dict({k: v for k, v in old.items() if k != "name"}, "tiny") == prof


def test_timestep_spacing_trailing_starts_few_steps_from_the_last_training_step():
    """diffusers' default spacing starts 2 DDIM steps at t=50 from pure noise; trailing starts at t=99."""
    prof = load_profile("tiny").with_changes(**{"diffusion.train_steps": 100})
    assert prof.diffusion.timestep_spacing == "trailing"  # config/policy.yaml
    prof = prof.with_changes(**{"diffusion.timestep_spacing": "leading"})
    model = DiffusionPolicyModel(prof, True, (HEAD.near_m, HEAD.far_m))
    model.set_inference_steps(2)
    assert model.infer_scheduler.timesteps.tolist() == [50, 0]
    model.set_timestep_spacing("trailing")
    assert model.infer_scheduler.timesteps.tolist() == [99, 49]
    assert model.sampling()["timestep_spacing"] == "trailing"
    model.set_inference_steps(4)  # the spacing stays when the step count changes
    assert model.infer_scheduler.timesteps.tolist() == [99, 74, 49, 24]
    with pytest.raises(ValueError, match="timestep spacing must be one of"):
        model.set_timestep_spacing("uniform")
    trailing = prof.with_changes(**{"diffusion.timestep_spacing": "trailing"})
    built = DiffusionPolicyModel(trailing, True, (HEAD.near_m, HEAD.far_m))
    assert built.sampling()["timestep_spacing"] == "trailing"
    with pytest.raises(ConfigError, match=r"diffusion\.timestep_spacing"):
        prof.with_changes(**{"diffusion.timestep_spacing": "uniform"})
    old = prof.to_dict()
    del old["diffusion"]["timestep_spacing"]  # records written before the key: diffusers' default
    read = profile_from_dict({k: v for k, v in old.items() if k != "name"}, "tiny")
    assert read.diffusion.timestep_spacing == "leading"


@pytest.mark.parametrize("use_depth", [True, False])
def test_traced_single_window_gives_the_eager_chunks_and_is_dropped_on_new_weights(use_depth):
    prof = load_profile("tiny").with_changes(use_depth=use_depth)
    model = DiffusionPolicyModel(prof, True, (HEAD.near_m, HEAD.far_m))
    model.state_norm.fit(np.random.default_rng(0).normal(size=(10, 32)))
    model.action_norm.fit(np.random.default_rng(1).uniform(size=(10, 26)))
    model.eval()
    s = torch.randn(1, prof.n_obs_steps, 32)
    d = torch.rand(1, prof.n_obs_steps, 21, 21) + 0.5 if use_depth else None
    eager = model.sample(s, d, torch.Generator().manual_seed(3))
    model.trace_single()
    assert model._single is not None and not any("_single" in k for k in model.state_dict())
    torch.testing.assert_close(model.sample(s, d, torch.Generator().manual_seed(3)), eager)
    batch = model.sample(s.repeat(2, 1, 1), None if d is None else d.repeat(2, 1, 1, 1))  # eager for B > 1
    assert batch.shape == (2, prof.horizon, 26)
    model.load_state_dict(model.state_dict())
    assert model._single is None  # a trace would hold the old weights
    model.trace_single()
    model.train()
    assert model._single is None


def test_unet_shapes_and_horizon_check():
    net = ConditionalUnet1D(26, 10, (16, 32, 64), 3, 4, 8)
    out = net(torch.randn(3, 8, 26), torch.tensor([1, 2, 3]), torch.randn(3, 10))
    assert out.shape == (3, 8, 26)
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(1, 6, 26), torch.tensor([1]), torch.randn(1, 10))


@pytest.mark.parametrize(("kernel", "stride", "padding", "bias"),
                         [(5, 1, 2, True), (3, 2, 1, True), (1, 1, 0, False)])
def test_batch1_conv_as_one_matmul_matches_torch_and_batches_keep_torch(kernel, stride, padding, bias):
    conv = Conv1d(12, 7, kernel, stride, padding, bias=bias).eval()
    ref = torch.nn.Conv1d(12, 7, kernel, stride, padding, bias=bias).eval()
    ref.load_state_dict(conv.state_dict())  # the same parameter names: checkpoints load either way
    x = torch.randn(1, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), ref(x))
        xb = torch.randn(3, 12, 16)
        torch.testing.assert_close(conv(xb), ref(xb))
    conv.train()
    y = conv(x)
    y.sum().backward()  # training takes torch's convolution (autograd through it)
    assert conv.weight.grad is not None and y.shape == ref(x).shape


def test_augmentation_stays_in_range_and_off_means_identity():
    prof = load_profile("cpu")
    g = torch.Generator().manual_seed(0)
    d = torch.rand(8, 2, 42, 42) * 1.2 + 0.3
    out = augment_depth(d, prof.augmentation.depth, HEAD.near_m, HEAD.far_m, g)
    assert out.shape == d.shape and out.min() >= HEAD.near_m and out.max() <= HEAD.far_m
    assert not torch.allclose(out, d)
    off = dataclasses.replace(
        prof.augmentation.depth,
        noise_probability=0.0,
        hole_probability=0.0,
        erase_probability=0.0,
        edge_probability=0.0,
        shift_probability=0.0,
    )
    torch.testing.assert_close(augment_depth(d, off, HEAD.near_m, HEAD.far_m, g), d)
    # A shift moves both observation steps of a window the same way (one camera pose per window).
    only_shift = dataclasses.replace(off, shift_probability=1.0, shift_px=3)
    ramp = torch.arange(42.0).view(1, 1, 1, 42).expand(4, 2, 42, 42) / 42 + 0.5
    shifted = augment_depth(ramp, only_shift, HEAD.near_m, HEAD.far_m, g)
    torch.testing.assert_close(shifted[:, 0], shifted[:, 1])
    cols = state_slices(True)
    s = torch.zeros(4, 2, 32)
    out = augment_state(s, prof.augmentation.state, cols["object_pos"], cols["joint_pos"], g)
    assert 0.005 < out[..., 26:29].std() < 0.05 and torch.all(out[..., 29:] == 0)


def _synthetic_dataset(path: Path, episodes: int = 6, t: int = 20) -> Path:
    steps = {
        "state": Field((32,), "float32"),
        "action": Field((26,), "float32"),
        "depth": Field((84, 84), "uint16"),
    }
    rec = {
        "task": "grasp_reach",
        "hand": "fourier",
        "has_goal": True,
        "objects": ["can_medium"],
        "sources": [],
        "depth": {"camera": "head_depth", "units": "mm", **dataclasses.asdict(HEAD)},
    }
    ds = create_dataset(path, rec, steps, {"object": Field((), "int64")})
    rng = np.random.default_rng(0)
    eps = []
    for k in range(episodes):
        ramp = np.linspace(0, 1, t)[:, None]
        eps.append(
            (
                {
                    "state": (rng.normal(size=(1, 32)) + ramp).astype(np.float32),
                    "action": (0.3 * ramp + 0.1 * k / episodes + np.zeros((t, 26))).astype(np.float32),
                    "depth": rng.integers(400, 1500, size=(t, 84, 84)).astype(np.uint16),
                },
                {"object": np.int64(0)},
            )
        )
    ds.append_episodes(eps)
    return path


def test_training_saves_ema_and_normalizers_and_resumes(tmp_path: Path):
    data = _synthetic_dataset(tmp_path / "d.zarr")
    prof = load_profile("tiny").with_changes(**{"training.steps": 12, "training.checkpoint_every": 6})
    out = tmp_path / "run"
    tr = Trainer(data, prof, out, progress=False, threads=1)
    tr.run(6)
    assert (out / STATE_FILE).is_file() and (out / "checkpoints" / "policy_000006.safetensors").is_file()
    ema6 = [p.clone() for p in tr.ema.shadow_params]
    raw6 = {k: v.clone() for k, v in tr.model.state_dict().items()}
    assert any(not torch.equal(e, p) for e, p in zip(ema6, tr.model.parameters(), strict=True))  # EMA lags
    from recipe_policy.generalist import load_generalist

    saved = load_generalist(out / "policy.safetensors")
    # The deployable file holds the EMA weights and the fitted normalizers.
    ema_params = dict(zip([n for n, _ in tr.model.named_parameters()], ema6, strict=True))
    for name, value in saved.model.named_parameters():
        torch.testing.assert_close(value, ema_params[name])
    torch.testing.assert_close(saved.model.action_norm.centre, tr.model.action_norm.centre)
    assert bool(saved.model.state_norm.fitted)
    resumed = Trainer(data, prof, out, resume=True, progress=False, threads=1)
    assert resumed.step == 6
    for a, b in zip(resumed.ema.shadow_params, ema6, strict=True):
        torch.testing.assert_close(a, b)
    for k, v in raw6.items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v)
    resumed.run()
    final = load_generalist(out / "policy.safetensors").record["training"]
    assert resumed.step == 12 and final["step"] == 12
    # the executed row's held-out error, sampled as deployed, is recorded beside the denoising loss
    assert np.isfinite(final["validation_executed_row_mse"]) and final["validation_executed_row_mse"] > 0
