"""``train_generalist``: distil a dataset of successful rollouts into the diffusion-policy generalist.

DDPM training of the profile's network (config/policy.yaml) with AdamW, a cosine learning-rate schedule
with warm-up, and an EMA of the weights (diffusers' ``EMAModel``; the EMA is what is evaluated and
deployed, paper Appendix D). Inputs are augmented per sample (``recipe_policy.augment``). Output folder:

* ``policy.safetensors``: the EMA weights + record of the last step (``load_policy`` takes the folder);
* ``checkpoints/policy_<step>.safetensors`` every ``checkpoint_every`` steps (to pick by closed-loop success);
* ``train_state.pt``: raw weights, EMA, optimizer, schedule and step for ``--resume`` (weights only);
* ``events.*``: TensorBoard (loss, validation loss, the executed row's validation error, learning rate,
  steps/s). The executed-row error (``Trainer.executed_row_error``) is the figure that tracks closed-loop
  success; it is also in each checkpoint's record (``training.validation_executed_row_mse``).

Example::

    ./dev run train_generalist --dataset runs/distill/grasp_reach.zarr --profile cpu --out runs/generalist/gr
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipe_common.checkpoint_io import CheckpointError, file_sha256, git_commit, load_torch_weights
from recipe_common.config import key_values
from recipe_common.policy_image import PolicyImageSpec
from recipe_policy.augment import augment_depth, augment_state
from recipe_policy.config import PolicyProfile, load_profile, profile_from_dict
from recipe_policy.dataset import DatasetError, ReplayDataset, open_dataset
from recipe_policy.diffusion_model import DiffusionPolicyModel
from recipe_policy.generalist import depth_spec_for, policy_spec_for, save_generalist
from recipe_policy.loading import GENERALIST_FILE
from recipe_policy.training_data import WindowSampler, dataset_depth_spec, state_slices

STATE_FILE = "train_state.pt"
POLICY_FILE = GENERALIST_FILE  # what load_policy looks for in a run folder
VAL_FRACTION = 0.05
VAL_BATCHES = 4
# Held-out windows sampled for the executed-row error at each checkpoint (a few seconds on the cpu profile).
EXECUTED_ROW_WINDOWS = 512


def split_episodes(n: int, seed: int, fraction: float = VAL_FRACTION) -> tuple[list[int], list[int]]:
    """(train, validation) episode indices; at least one validation episode when there are two or more."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    k = min(n - 1, max(1, round(fraction * n))) if n > 1 else 0
    return sorted(order[k:].tolist()), sorted(order[:k].tolist())


@torch.no_grad()
def executed_row_mse(
    model: DiffusionPolicyModel,
    windows: WindowSampler,
    idx: np.ndarray,
    batch_size: int,
    generator: torch.Generator | None = None,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """MSE of the chunk row a deployment executes first (the newest observation's), sampled as deployed,
    against the label, over windows ``idx``; actions normalized by ``normalize`` (default: the model's own
    [-1, 1] normalizer). The one definition behind the trainer's figure and ``./dev bench clone_budget``."""
    norm = normalize or model.action_norm.normalize
    row = model.profile.n_obs_steps - 1
    errs = []
    for lo in range(0, len(idx), batch_size):
        b = windows.batch(idx[lo : lo + batch_size])
        pred = model.sample(b.states, b.depths, generator=generator)[:, row]
        errs.append(((norm(pred) - norm(b.actions[:, row])) ** 2).mean(-1))
    return float(torch.cat(errs).mean())


class Trainer:
    """One training run (fresh or resumed) of ``profile`` on ``dataset`` into ``out``."""

    def __init__(
        self,
        dataset: Path,
        profile: PolicyProfile,
        out: Path,
        resume: bool = False,
        max_episodes: int | None = None,
        progress: bool = True,
        threads: int | None = None,
    ) -> None:
        from diffusers.optimization import get_scheduler
        from diffusers.training_utils import EMAModel

        self.out, self.progress = out, progress
        self.ds: ReplayDataset = open_dataset(dataset)
        rec = self.ds.record
        self.dataset_path = dataset
        self.state_file = out / STATE_FILE
        saved: dict[str, Any] | None = None
        if resume:
            if not self.state_file.is_file():
                raise CheckpointError(f"{self.state_file}: nothing to resume")
            saved = load_torch_weights(self.state_file)
            profile = profile_from_dict(
                {k: v for k, v in json.loads(saved["profile_json"]).items() if k != "name"}, profile.name
            )
        self.profile = profile
        t = profile.training
        torch.manual_seed(t.seed)
        torch.set_num_threads(threads or t.torch_threads)
        head = dataset_depth_spec(self.ds)
        self.depth_spec: PolicyImageSpec | None = depth_spec_for(profile, head) if profile.use_depth else None
        self.has_goal = bool(rec["has_goal"])
        self.spec = policy_spec_for(
            profile, rec["task"], rec["hand"], rec.get("objects", []), self.has_goal, self.depth_spec
        )
        episodes = list(range(self.ds.n_episodes))
        if max_episodes is not None:
            episodes = episodes[:max_episodes]
        train_eps, val_eps = split_episodes(len(episodes), t.seed)
        train_eps = [episodes[i] for i in train_eps]
        val_eps = [episodes[i] for i in val_eps]
        self.train = WindowSampler(
            self.ds, train_eps, profile.n_obs_steps, profile.horizon, self.depth_spec, progress,
            state_key=t.state_key,
        )
        self.val = (
            WindowSampler(self.ds, val_eps, profile.n_obs_steps, profile.horizon, self.depth_spec,
                          state_key=t.state_key)
            if val_eps
            else None
        )
        self.episodes = {"train": len(train_eps), "validation": len(val_eps)}
        self.model = DiffusionPolicyModel(profile, self.has_goal, (head.near_m, head.far_m))
        self.model.state_norm.fit(self.train.states)
        self.model.action_norm.fit(self.train.actions)
        self.ema_model = DiffusionPolicyModel(profile, self.has_goal, (head.near_m, head.far_m))
        self.ema = EMAModel(
            self.model.parameters(),
            power=t.ema_power,
            decay=t.ema_max_decay,
            use_ema_warmup=True,
            inv_gamma=1.0,
        )
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=t.learning_rate, betas=tuple(t.betas), weight_decay=t.weight_decay
        )
        self.sched = get_scheduler(
            "cosine", self.opt, num_warmup_steps=t.warmup_steps, num_training_steps=t.steps
        )
        self.step = 0
        self.wall_s = 0.0
        self.gen = torch.Generator().manual_seed(t.seed + 1)
        self.rng = np.random.default_rng(t.seed + 2)
        if saved is not None:
            self.model.load_state_dict(saved["model"])
            self.ema.load_state_dict(saved["ema"])
            self.opt.load_state_dict(saved["optimizer"])
            self.sched.load_state_dict(saved["scheduler"])
            self.step = int(saved["step"])
            self.wall_s = float(saved["wall_s"])
            self.gen.set_state(saved["generator"])
            self.rng = np.random.default_rng(int(saved["numpy_seed"]) + self.step)
        cols = state_slices(self.has_goal)
        self._obj_cols, self._joint_cols = cols["object_pos"], cols["joint_pos"]
        head_near_far = (head.near_m, head.far_m)
        self._near, self._far = head_near_far

    # --- one step ---------------------------------------------------------------------------------------

    def _augmented(self, sampler: WindowSampler, idx: np.ndarray, augment: bool) -> tuple[torch.Tensor, ...]:
        b = sampler.batch(idx)
        states, depths = b.states, b.depths
        if augment:
            states = augment_state(
                states, self.profile.augmentation.state, self._obj_cols, self._joint_cols, self.gen
            )
            if depths is not None:
                depths = augment_depth(
                    depths, self.profile.augmentation.depth, self._near, self._far, self.gen
                )
        return states, depths, b.actions

    def train_step(self) -> float:
        t = self.profile.training
        self.model.train()
        idx = self.rng.integers(0, self.train.size, t.batch_size)
        states, depths, actions = self._augmented(self.train, idx, True)
        loss = self.model.loss(states, depths, actions, self.gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.step} (diverged)")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.opt.step()
        self.sched.step()
        self.ema.step(self.model.parameters())
        self.step += 1
        return float(loss.item())

    @torch.no_grad()
    def validation_loss(self) -> float | None:
        """Denoising loss of the EMA weights on held-out episodes (fixed noise: comparable over time)."""
        if self.val is None:
            return None
        model = self.ema_weights()
        model.eval()
        g = torch.Generator().manual_seed(12345)
        rng = np.random.default_rng(12345)
        losses = []
        for _ in range(VAL_BATCHES):
            idx = rng.integers(0, self.val.size, min(self.profile.training.batch_size, self.val.size))
            b = self.val.batch(idx)
            losses.append(float(model.loss(b.states, b.depths, b.actions, g)))
        return float(np.mean(losses))

    @torch.no_grad()
    def executed_row_error(self) -> float | None:
        """MSE (actions normalized to [-1, 1]) of the chunk row a deployment executes first (the newest
        observation's), sampled as deployed by the EMA weights, on held-out windows.

        The denoising loss averages every noise level and the chunk's far rows, whose future is uncertain;
        closed-loop success depends on the rows executed. An MLP clone of the grasp_reach specialist keeps
        0.97x its success at 1.2e-4 and falls to 0.89x at 2.6e-4 (``./dev bench clone_budget``), so this is
        the figure to watch, and to compare with a clone's."""
        if self.val is None:
            return None
        idx = np.random.default_rng(54321).permutation(self.val.size)[:EXECUTED_ROW_WINDOWS]
        return executed_row_mse(self.ema_weights(), self.val, idx, self.profile.training.batch_size,
                                torch.Generator().manual_seed(54321))

    def ema_weights(self) -> DiffusionPolicyModel:
        """The EMA model (weights copied in, normalizers from the trained model)."""
        self.ema_model.load_state_dict(self.model.state_dict())
        self.ema.copy_to(self.ema_model.parameters())
        return self.ema_model.eval()

    # --- files ------------------------------------------------------------------------------------------

    def record(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        rec = self.ds.record
        return {
            "training": {
                "step": self.step,
                "steps_planned": self.profile.training.steps,
                "wall_s": round(self.wall_s, 1),
                "torch_threads": torch.get_num_threads(),
                "episodes": self.episodes,
                "windows": self.train.size,
                **(extra or {}),
            },
            "dataset": {
                "path": str(self.dataset_path),
                "format": rec.get("format"),
                "episodes": self.ds.n_episodes,
                "steps": self.ds.n_steps,
                "objects": rec.get("objects"),
                "sources": rec.get("sources"),
                "counts": rec.get("counts"),
            },
            "git": git_commit(),
        }

    def save(self, extra: dict[str, Any] | None = None) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "checkpoints").mkdir(exist_ok=True)
        rec = self.record(extra)
        ema = self.ema_weights()
        path = save_generalist(self.out / POLICY_FILE, ema, self.spec, rec)
        save_generalist(self.out / "checkpoints" / f"policy_{self.step:06d}.safetensors", ema, self.spec, rec)
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "wall_s": self.wall_s,
            "generator": self.gen.get_state(),
            "numpy_seed": int(self.profile.training.seed),
            "profile_json": json.dumps(self.profile.to_dict()),
        }
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_file)
        return path

    # --- loop -------------------------------------------------------------------------------------------

    def run(self, steps: int | None = None) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        t = self.profile.training
        total = steps if steps is not None else t.steps
        writer = SummaryWriter(str(self.out))
        bar = tqdm(
            total=total,
            initial=min(self.step, total),
            desc="train",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        losses: list[float] = []
        last: dict[str, Any] = {}
        try:
            while self.step < total:
                t0 = time.perf_counter()
                losses.append(self.train_step())
                self.wall_s += time.perf_counter() - t0
                bar.update(1)
                if self.step % t.log_every == 0 or self.step == total:
                    mean = float(np.mean(losses[-t.log_every :]))
                    writer.add_scalar("loss/train", mean, self.step)
                    writer.add_scalar("lr", self.sched.get_last_lr()[0], self.step)
                    writer.add_scalar("perf/steps_per_s", self.step / max(self.wall_s, 1e-9), self.step)
                    row_err = last.get("executed_row_mse")
                    shown = {} if row_err is None else {"executed_row": f"{row_err:.1e}"}
                    bar.set_postfix(loss=f"{mean:.4f}", **shown)
                    last["loss"] = mean
                if self.step % t.checkpoint_every == 0 or self.step == total:
                    val = self.validation_loss()
                    row = self.executed_row_error()
                    if val is not None:
                        writer.add_scalar("loss/validation_ema", val, self.step)
                        writer.add_scalar("error/executed_row_validation_ema", row, self.step)
                        last["validation_loss"], last["executed_row_mse"] = val, row
                    self.save({"last_loss": last.get("loss"), "validation_loss": val,
                               "validation_executed_row_mse": row})
        finally:
            bar.close()
            writer.close()
        return {"step": self.step, "wall_s": self.wall_s, **last}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_generalist",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", type=Path, required=True, help="zarr dataset written by collect")
    p.add_argument("--profile", default="cpu", help="profile of config/policy.yaml (paper, cpu, tiny)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the profile's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from train_state.pt")
    p.add_argument("--no-object-pos", action="store_true", help="depth-only ablation (paper Table III)")
    p.add_argument("--no-depth", action="store_true", help="state-only ablation")
    p.add_argument("--max-episodes", type=int, default=None, help="use only the first N episodes")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the profile's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="profile settings (dotted keys of config/policy.yaml, values as YAML): "
                   "augmentation.state.joint_pos_noise_rad=0.02")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        profile = load_profile(a.profile)
        changes: dict[str, Any] = {}
        if a.no_object_pos:
            changes["use_object_pos"] = False
        if a.no_depth:
            changes["use_depth"] = False
        if a.steps is not None:
            changes["training.steps"] = a.steps
        if a.seed is not None:
            changes["training.seed"] = a.seed
        changes.update(key_values(a.set, "--set"))
        if changes:
            profile = profile.with_changes(**changes)
        if (a.out / STATE_FILE).exists() and not a.resume:
            raise CheckpointError(f"{a.out} already holds a run; pass --resume or another --out")
        trainer = Trainer(a.dataset, profile, a.out, a.resume, a.max_episodes, not a.no_progress, a.threads)
        if a.resume and a.steps is not None:
            trainer.profile = trainer.profile.with_changes(**{"training.steps": a.steps})
        result = trainer.run(a.steps)
    except (CheckpointError, DatasetError, FileNotFoundError, ValueError, FloatingPointError) as exc:
        print(f"train_generalist: error: {exc}", file=sys.stderr)
        return 1
    path = a.out / POLICY_FILE
    print(
        f"trained {result['step']} steps in {result['wall_s'] / 60:.1f} min "
        f"(loss {result.get('loss', math.nan):.4f}, "
        f"validation {result.get('validation_loss')}, executed-row MSE {result.get('executed_row_mse')}): "
        f"{path} (sha256 {file_sha256(path)[:12]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
