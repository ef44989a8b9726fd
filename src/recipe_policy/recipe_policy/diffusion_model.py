"""The generalist's network: observation encoder + conditional 1-D UNet + normalizers, and its diffusion.

Training (``loss``): a window of observations conditions the UNet, which learns to predict the noise
added to the normalized action chunk at a random DDPM step (diffusers' ``DDPMScheduler``, squared-cosine
schedule, 100 steps in the paper). Inference (``sample``): start from Gaussian noise and denoise with
DDIM in a few steps (``DDIMScheduler`` built from the same config, so the schedule is the trained one),
then unnormalize. Depth is normalized here from the policy image's metres ([near, far] -> [-1, 1]);
states and actions by fitted ``RangeNormalizer`` buffers that live in the checkpoint.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from recipe_common import robot_spec
from recipe_common.observation import policy_layout
from recipe_policy.config import TIMESTEP_SPACINGS, PolicyProfile
from recipe_policy.normalizer import RangeNormalizer
from recipe_policy.obs_encoder import ObservationEncoder
from recipe_policy.unet1d import ConditionalUnet1D


def state_columns(has_goal: bool, use_object_pos: bool) -> list[int]:
    """Columns of a policy_state row the encoder reads (all, or all but object_pos for depth-only)."""
    out, start = [], 0
    for name, n in policy_layout(has_goal):
        if name != "object_pos" or use_object_pos:
            out += list(range(start, start + n))
        start += n
    return out


def make_schedulers(profile: PolicyProfile) -> tuple[Any, Any]:
    """(training DDPM scheduler, inference scheduler) from diffusers, sharing one noise schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    d = profile.diffusion
    train = DDPMScheduler(
        num_train_timesteps=d.train_steps,
        beta_schedule=d.beta_schedule,
        prediction_type=d.prediction_type,
        clip_sample=d.clip_sample,
    )
    if d.sampler == "ddpm":
        infer = DDPMScheduler.from_config(train.config)
        infer.set_timesteps(d.train_steps)
    else:
        infer = DDIMScheduler.from_config(train.config, timestep_spacing=d.timestep_spacing)
        infer.set_timesteps(d.inference_steps)
    return train, infer


class DiffusionPolicyModel(nn.Module):
    """Everything with weights (saved in the checkpoint); schedulers are rebuilt from the profile."""

    def __init__(self, profile: PolicyProfile, has_goal: bool, depth_range_m: tuple[float, float]) -> None:
        super().__init__()
        self.profile = profile
        self.has_goal = has_goal
        self.state_dim = sum(n for _, n in policy_layout(has_goal))
        self.action_dim = robot_spec.ACTION_DIM
        enc, mlp = profile.encoder, profile.state_mlp
        self.encoder = ObservationEncoder(
            state_columns(has_goal, profile.use_object_pos),
            profile.n_obs_steps,
            profile.use_depth,
            enc.widths,
            enc.feature_dim,
            mlp.hidden_dims,
            mlp.feature_dim,
            mlp.activation,
        )
        u = profile.unet
        self.unet = ConditionalUnet1D(
            self.action_dim, self.encoder.cond_dim, u.down_dims, u.kernel_size, u.n_groups, u.step_embed_dim
        )
        self.state_norm = RangeNormalizer(self.state_dim)
        self.action_norm = RangeNormalizer(self.action_dim)
        near, far = depth_range_m
        self.register_buffer("depth_range", torch.tensor([near, far], dtype=torch.float32))
        self.train_scheduler, self.infer_scheduler = make_schedulers(profile)
        self.initial_noise_scale = profile.diffusion.initial_noise_scale
        # (encoder, unet) traced and frozen for one observation window (``trace_single``); a plain tuple so
        # that the copies are not registered as submodules (they would appear twice in the state dict).
        self._single: tuple[Any, Any] | None = None

    # --- inputs ----------------------------------------------------------------------------------------

    def normalize_depth(self, depths: torch.Tensor) -> torch.Tensor:
        near, far = self.depth_range[0], self.depth_range[1]
        return (depths.clamp(near, far) - near) / (far - near) * 2.0 - 1.0

    def _encoder_inputs(
        self, states: torch.Tensor, depths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.state_norm.normalize(states)
        d = self.normalize_depth(depths) if (depths is not None and self.profile.use_depth) else None
        return s, d

    def condition(self, states: torch.Tensor, depths: torch.Tensor | None) -> torch.Tensor:
        """(B, n, D) raw states, (B, n, H, W) metres -> (B, cond_dim)."""
        return self.encoder(*self._encoder_inputs(states, depths))

    # --- training --------------------------------------------------------------------------------------

    def loss(
        self,
        states: torch.Tensor,
        depths: torch.Tensor | None,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """MSE of the noise (or sample) prediction on (B, horizon, 26) raw action chunks."""
        cond = self.condition(states, depths)
        x0 = self.action_norm.normalize(actions)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        steps = torch.randint(
            0,
            self.train_scheduler.config.num_train_timesteps,
            (x0.shape[0],),
            generator=generator,
            device=x0.device,
        )
        noisy = self.train_scheduler.add_noise(x0, noise, steps)
        pred = self.unet(noisy, steps, cond)
        target = noise if self.profile.diffusion.prediction_type == "epsilon" else x0
        return nn.functional.mse_loss(pred, target)

    # --- inference -------------------------------------------------------------------------------------

    def set_inference_steps(self, steps: int) -> None:
        """Denoise in ``steps`` DDIM steps instead of the profile's (fewer: faster, possibly rougher chunks;
        the training is the same, so this is a deployment choice, measured by eval_generalist)."""
        if self.profile.diffusion.sampler == "ddpm":
            raise ValueError("the DDPM sampler always takes every training step; only DDIM can take fewer")
        most = self.profile.diffusion.train_steps
        if not 1 <= int(steps) <= most:
            raise ValueError(f"inference steps must be in 1..{most}, got {steps}")
        self.infer_scheduler.set_timesteps(int(steps))

    def set_timestep_spacing(self, spacing: str) -> None:
        """Visit the DDIM timesteps spaced ``spacing`` (leading / trailing / linspace) instead of the
        profile's; the number of steps stays (a deployment choice; see DiffusionConfig.timestep_spacing)."""
        from diffusers import DDIMScheduler

        if self.profile.diffusion.sampler == "ddpm":
            raise ValueError("the DDPM sampler always takes every training step; no spacing to choose")
        if spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep spacing must be one of {list(TIMESTEP_SPACINGS)}, got {spacing!r}")
        steps = len(self.infer_scheduler.timesteps)
        config = self.infer_scheduler.config
        self.infer_scheduler = DDIMScheduler.from_config(config, timestep_spacing=spacing)
        self.infer_scheduler.set_timesteps(steps)

    def set_initial_noise_scale(self, scale: float) -> None:
        """Start each chunk's denoising from ``scale`` x N(0, I) instead of the profile's scale (0: a
        deterministic chunk per observation window; a deployment choice, measured by eval_generalist)."""
        if not 0.0 <= float(scale) <= 1.0:
            raise ValueError(f"initial noise scale must be in [0, 1], got {scale}")
        self.initial_noise_scale = float(scale)

    def sampling(self) -> dict[str, Any]:
        """The sampler settings in use (evaluation reports record them beside the success they give)."""
        return {
            "sampler": self.profile.diffusion.sampler,
            "inference_steps": len(self.infer_scheduler.timesteps),
            "timestep_spacing": self.infer_scheduler.config.get("timestep_spacing", "leading")
            if self.profile.diffusion.sampler == "ddim" else None,
            "initial_noise_scale": self.initial_noise_scale,
        }

    @torch.no_grad()
    def trace_single(self) -> None:
        """Trace and freeze the encoder and the UNet for batch 1, the policy node's one window per call.

        A batch-1 call of the cpu profile pays per-module Python and dispatch overhead; the frozen
        TorchScript graphs cut it: a 4-step call 27.7 -> 23.1 ms p50, 35.1 -> 28.5 ms p95 (interleaved A/B,
        one thread, idle core), the same chunks to float rounding (a test checks). TorchScript is deprecated
        in torch 2.13, but the exported specialists use it too, and ``torch.compile`` took 38 s to compile
        for a smaller gain. The copies hold the weights of the moment: loading weights or switching to
        training drops them (``load_state_dict``, ``train``).
        """
        if self.training:
            raise RuntimeError("trace_single is for inference: call eval() first")
        n, image = self.profile.n_obs_steps, self.profile.image
        states = torch.zeros(1, n, self.state_dim)
        depths = torch.zeros(1, n, image.height, image.width) if self.profile.use_depth else None
        s, d = self._encoder_inputs(states, depths)
        cond = self.encoder(s, d)
        x = torch.zeros(1, self.profile.horizon, self.action_dim)
        k = torch.zeros(1, dtype=torch.long)
        # The shape checks in forward become constants (intended); the deprecation is said above.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # tracing takes tensors only: a state-only encoder (no depth input) stays eager (it is an MLP)
            enc = self.encoder if d is None else torch.jit.freeze(torch.jit.trace(self.encoder, (s, d)))
            unet = torch.jit.freeze(torch.jit.trace(self.unet, (x, k, cond)))
        self._single = (enc, unet)

    def train(self, mode: bool = True) -> DiffusionPolicyModel:
        if mode:
            self._single = None
        return super().train(mode)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._single = None
        return super().load_state_dict(*args, **kwargs)

    @torch.no_grad()
    def sample(
        self, states: torch.Tensor, depths: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, horizon, 26) raw action chunks for (B, n, D) states and (B, n, H, W) depths."""
        b = states.shape[0]
        encoder, unet = self._single if (self._single is not None and b == 1) else (self.encoder, self.unet)
        cond = encoder(*self._encoder_inputs(states, depths))
        x = torch.randn((b, self.profile.horizon, self.action_dim), generator=generator, device=states.device)
        x = x * self.initial_noise_scale
        sched = self.infer_scheduler
        for k in sched.timesteps:
            eps = unet(x, k.expand(b), cond)
            x = sched.step(eps, k, x, generator=generator).prev_sample
        return self.action_norm.unnormalize(x)
