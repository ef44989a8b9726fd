"""rsl-rl's OnPolicyRunner, adapted: safe checkpoint I/O, metadata, per-iteration metrics, quiet console.

What changes relative to rsl-rl-lib 5.5.1 and why:

* ``load`` uses ``torch.load(weights_only=True)`` and checks shapes first (rsl-rl unpickles);
* ``save`` adds the training position (env steps, wall time) to the checkpoint's ``infos`` and writes
  the metadata.json that names config, commit, task, objects and metrics;
* resuming continues at the iteration after the checkpoint's (rsl-rl would repeat the saved one) and
  continues the env-step and wall-time counters, so curves from resumed runs line up;
* the logger still writes TensorBoard, but the 30-line console block per iteration is replaced by a
  callback (the train CLI draws a progress bar) and the metrics are kept as a history for curves.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rsl_rl.runners import OnPolicyRunner
from rsl_rl.utils.logger import Logger

from recipe_sim.ppo.action_head import install_action_head, ready_pose_action, scale_vector, set_action_std
from recipe_sim.ppo.checkpoint import (
    CheckpointError,
    build_metadata,
    check_state_matches,
    load_checkpoint,
    write_metadata,
)
from recipe_sim.ppo.config import PPOConfig
from recipe_sim.ppo.export import ExportedFiles, export_actor, verify_export

SUCCESS_KEY_HINT = "success"


@dataclass(frozen=True)
class IterationStats:
    """One PPO iteration, as a point on a learning curve."""

    iteration: int
    env_steps: int
    wall_time_s: float
    steps_per_s: float
    mean_reward: float | None  # mean episode return over the last (up to) 100 finished episodes
    mean_step_reward: float  # mean per-step reward of this iteration's rollout (defined from iteration 0)
    success_rate: float | None  # from the env's extras["log"]; None until an episode has finished
    extras: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunInfo:
    """What a run trains; copied into every checkpoint's metadata."""

    task: str
    object_group: str  # e.g. "shape[1]" or "single:can_small"
    objects: tuple[str, ...]
    seed: int
    extra: Mapping[str, Any] = field(default_factory=dict)


class MetricsLogger(Logger):
    """rsl-rl Logger that keeps TensorBoard output but reports each iteration through a callback."""

    def __init__(
        self,
        *args: Any,
        on_iteration: Callable[[IterationStats], None] | None = None,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_iteration = on_iteration
        self.verbose = verbose
        self.history: list[IterationStats] = []
        self._step_reward_sum = 0.0
        self._step_reward_count = 0

    def process_env_step(
        self,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        extras: dict,
        intrinsic_rewards: torch.Tensor | None = None,
    ) -> None:
        self._step_reward_sum += float(rewards.sum())
        self._step_reward_count += int(rewards.numel())
        super().process_env_step(rewards, dones, extras, intrinsic_rewards)

    def log(
        self,
        it: int,
        start_it: int,
        total_it: int,
        collect_time: float,
        learn_time: float,
        loss_dict: dict,
        learning_rate: float,
        action_std: torch.Tensor,
        rnd_weight: float | None,
        print_minimal: bool = False,
        width: int = 80,
        pad: int = 40,
    ) -> None:
        extras = self._mean_episode_extras() if self.writer is not None else {}
        sink: contextlib.AbstractContextManager = (
            contextlib.nullcontext() if self.verbose else contextlib.redirect_stdout(io.StringIO())
        )
        with sink:
            super().log(
                it,
                start_it,
                total_it,
                collect_time,
                learn_time,
                loss_dict,
                learning_rate,
                action_std,
                rnd_weight,
                print_minimal,
                width,
                pad,
            )
        if self.writer is None:
            return
        step_time = collect_time + learn_time
        collection = self.cfg["num_steps_per_env"] * self.num_envs * self.gpu_world_size
        stats = IterationStats(
            iteration=it,
            env_steps=int(self.tot_timesteps),
            wall_time_s=float(self.tot_time),
            steps_per_s=collection / step_time if step_time > 0 else math.nan,
            mean_reward=statistics.mean(self.rewbuffer) if self.rewbuffer else None,
            mean_step_reward=self._step_reward_sum / max(self._step_reward_count, 1),
            success_rate=_success_rate(extras),
            extras=extras,
        )
        self._step_reward_sum, self._step_reward_count = 0.0, 0
        self.history.append(stats)
        if self.on_iteration is not None:
            self.on_iteration(stats)

    def _mean_episode_extras(self) -> dict[str, float]:
        """Means of the env's extras["log"] entries over this iteration (before rsl-rl clears them)."""
        sums: dict[str, list[float]] = {}
        for info in self.ep_extras:
            for key, value in info.items():
                t = torch.as_tensor(value, dtype=torch.float32).flatten()
                t = t[torch.isfinite(t)]
                if t.numel():
                    sums.setdefault(key, []).extend(t.tolist())
        return {k: float(sum(v) / len(v)) for k, v in sums.items() if v}


def _success_rate(extras: Mapping[str, float]) -> float | None:
    keys = [k for k in extras if SUCCESS_KEY_HINT in k.lower()]
    if not keys:
        return None
    rate_keys = [k for k in keys if "rate" in k.lower()] or keys
    return extras[sorted(rate_keys)[0]]


def action_head_for(env: Any, config: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(offset, scale) of the actor's action head for ``env`` under ``config``."""
    head = config.action_head
    n = int(env.num_actions)
    offset = ready_pose_action(env) if head.offset == "ready_pose" else torch.zeros(n)
    return offset, scale_vector(n, head.arm_scale, head.hand_scale)


class _TimeBudgetReached(Exception):
    """Internal: stops rsl-rl's learn loop from the per-iteration logging hook."""


class SpecialistRunner(OnPolicyRunner):
    """PPO on a RecipeVecEnv (or any rsl-rl VecEnv) with safe checkpoints and metadata."""

    def __init__(
        self,
        env: Any,
        config: PPOConfig,
        log_dir: str | Path,
        run: RunInfo,
        on_iteration: Callable[[IterationStats], None] | None = None,
        verbose: bool = False,
        device: str = "cpu",
    ) -> None:
        self.config = config
        self.run = run
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        with quiet:  # rsl-rl prints both model reprs on construction
            super().__init__(env, config.to_rsl_rl(), log_dir=str(log_dir), device=device)
        self.logger = MetricsLogger(
            log_dir=str(log_dir),
            cfg=self.cfg,
            env_cfg=self.env.cfg,
            num_envs=self.env.num_envs,
            is_distributed=self.is_distributed,
            gpu_world_size=self.gpu_world_size,
            gpu_global_rank=self.gpu_global_rank,
            device=self.device,
            on_iteration=self._on_iteration,
            verbose=verbose,
        )
        self._user_callback = on_iteration
        self._deadline: float | None = None
        self._unfreeze_after: int | None = None
        self._then_lr: float | None = None
        self.log_dir = log_dir
        offset, scale = action_head_for(env, config)
        install_action_head(self.actor, offset, scale, config.action_head.output_gain)
        if config.actor.arm_init_std is not None:
            set_action_std(self.actor, config.actor.arm_init_std)

    def freeze_actor(self, iterations: int, then_learning_rate: float | None = None) -> None:
        """Keep the actor (mean and std) fixed for the next ``iterations`` PPO iterations; the critic learns.

        After behaviour cloning the critic is still random, and PPO's first advantages would be noise that
        pushes a working policy around; a few critic-only iterations give it the cloned policy's values.
        ``then_learning_rate`` replaces the learning rate when the actor is released (the critic warms up
        at the profile's rate, the fine-tuning runs at this one).
        """
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self._then_lr = then_learning_rate
        if iterations == 0:
            if then_learning_rate is not None:
                self.set_learning_rate(then_learning_rate)
            return
        for p in self.actor.parameters():
            p.requires_grad_(False)
        self._unfreeze_after = self.current_learning_iteration + iterations - 1

    def freeze_actor_normalizer(self) -> None:
        """Stop updating the actor's observation normalizer: it keeps the statistics it has now.

        rsl-rl refits the running mean/std from every rollout, also while ``freeze_actor`` holds the
        weights. A behaviour clone's weights only mean what they were fit to mean on the demonstrations'
        statistics, so a drifting normalizer changes the policy outside PPO's clipped steps: the handover
        clone's training success fell from 30-50% to 0 by the 11th critic-only iteration (the actor's
        weights untouched) and stayed there; frozen, it held 25-50% (``docs/specialists.md``). The
        critic's normalizer keeps learning (its network is new). Not saved in a checkpoint (a plain
        attribute of the normalizer): a resumed run calls this again.
        """
        norm = getattr(self.actor, "obs_normalizer", None)
        if norm is None or not hasattr(norm, "until"):
            return  # obs_normalization off: an identity, nothing to freeze
        norm.until = int(norm.count)

    @property
    def actor_normalizer_frozen(self) -> bool:
        norm = getattr(self.actor, "obs_normalizer", None)
        return norm is not None and getattr(norm, "until", None) is not None and int(norm.count) >= norm.until

    def set_learning_rate(self, lr: float) -> None:
        """PPO's learning rate from now on (a fixed schedule keeps it; an adaptive one starts from it)."""
        if not 0 < lr <= 1:
            raise ValueError(f"learning rate must be in (0, 1], got {lr}")
        self.alg.learning_rate = lr
        for group in self.alg.optimizer.param_groups:
            group["lr"] = lr

    @property
    def actor_frozen(self) -> bool:
        return self._unfreeze_after is not None

    def _on_iteration(self, stats: IterationStats) -> None:
        if self._unfreeze_after is not None and stats.iteration >= self._unfreeze_after:
            for p in self.actor.parameters():
                p.requires_grad_(True)
            self._unfreeze_after = None
            if self._then_lr is not None:
                self.set_learning_rate(self._then_lr)
        if self._user_callback is not None:
            self._user_callback(stats)
        self._check_deadline(stats)

    @property
    def history(self) -> list[IterationStats]:
        return self.logger.history

    @property
    def actor(self) -> torch.nn.Module:
        return self.alg.get_policy()

    def train(self, iterations: int, time_budget_s: float | None = None) -> list[IterationStats]:
        """Run ``iterations`` more PPO iterations (continuing after a resumed checkpoint).

        With ``time_budget_s`` training stops after the iteration whose cumulative training time (this
        call's) crosses the budget; the last iteration is saved either way.
        """
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if time_budget_s is not None and not time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0, got {time_budget_s}")
        self._deadline = None if time_budget_s is None else self.logger.tot_time + time_budget_s
        quiet = (
            contextlib.redirect_stdout(io.StringIO()) if not self.logger.verbose else contextlib.nullcontext()
        )
        try:
            with quiet:
                self.learn(
                    iterations,
                    init_at_random_ep_len=self.config.init_at_random_ep_len
                    and self.current_learning_iteration == 0,
                )
        except _TimeBudgetReached:
            # Raised from the logger right after iteration `current_learning_iteration` was logged, i.e.
            # before rsl-rl's periodic save: save it here as learn() would at its end.
            self.save(str(self.log_dir / f"model_{self.current_learning_iteration}.pt"))
            self.logger.stop_logging_writer()
        finally:
            self._deadline = None
        if self.logger.writer is not None:
            self.logger.writer.flush()
        self.current_learning_iteration += 1  # rsl-rl leaves it at the last finished iteration
        return self.history

    def _check_deadline(self, stats: IterationStats) -> None:
        if self._deadline is not None and stats.wall_time_s >= self._deadline:
            raise _TimeBudgetReached

    # --- checkpoints ---------------------------------------------------------------------------------

    def save(self, path: str, infos: dict | None = None) -> None:
        last = self.history[-1] if self.history else None
        metrics = {
            "success_rate": last.success_rate if last else None,
            "mean_reward": last.mean_reward if last else None,
            "env_steps": int(self.logger.tot_timesteps),
            "wall_time_s": float(self.logger.tot_time),
        }
        infos = {**(infos or {}), **{k: v for k, v in metrics.items() if v is not None}}
        super().save(path, infos)
        meta = build_metadata(
            path,
            config=self.config.to_dict(),
            task=self.run.task,
            object_group=self.run.object_group,
            objects=list(self.run.objects),
            seed=self.run.seed,
            iteration=self.current_learning_iteration,
            metrics=metrics,
            extra={
                "num_envs": int(self.env.num_envs),
                "num_actions": int(self.env.num_actions),
                "obs_dim": int(self.actor.obs_dim),
                **dict(self.run.extra),
            },
        )
        write_metadata(path, meta)

    def load(
        self, path: str, load_cfg: dict | None = None, strict: bool = True, map_location: str | None = None
    ) -> dict:
        """Load a checkpoint safely; the next ``train`` continues after its iteration."""
        data = load_checkpoint(path)
        check_state_matches(data["actor_state_dict"], self.alg.get_policy(), f"{path}: actor")
        check_state_matches(data["critic_state_dict"], self.alg.critic, f"{path}: critic")
        try:
            self.alg.load(data, load_cfg, strict)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: cannot restore training state: {exc}") from exc
        if load_cfg is None or load_cfg.get("iteration"):
            self.current_learning_iteration = int(data["iter"]) + 1
            infos = data.get("infos") or {}
            self.logger.tot_timesteps = int(infos.get("env_steps", 0))
            self.logger.tot_time = float(infos.get("wall_time_s", 0.0))
        return data.get("infos") or {}

    def export(
        self, out_dir: str | Path, obs: torch.Tensor | None = None, info: Mapping[str, Any] | None = None
    ) -> tuple[ExportedFiles, dict[str, float]]:
        """Export the actor (TorchScript + ONNX) and check both against it on ``obs`` (or random input)."""
        files = export_actor(
            self.actor,
            out_dir,
            info={
                "task": self.run.task,
                "objects": list(self.run.objects),
                "iteration": self.current_learning_iteration - 1,
                **dict(info or {}),
            },
        )
        if obs is None:
            obs = self.env.get_observations()["policy"]
        return files, verify_export(self.actor, files, obs=obs)

    def act(self, obs: Any) -> torch.Tensor:
        """Deterministic actions (policy mean) for a TensorDict observation."""
        policy = self.alg.get_policy()
        with torch.no_grad():
            return policy(obs.to(self.device)).detach()
