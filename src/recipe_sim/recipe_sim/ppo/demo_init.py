"""Demo-initialised PPO: clone a scripted expert's successful episodes into the actor, DAgger, then PPO.

Why: from a random actor, PPO on 2 CPU cores (about 4M env steps an hour) learns to touch the object
but not to close the hand and lift it (the 60-minute grasp_reach run: 0% from the ready pose). The
closed-loop experts of ``recipe_sim.experts`` (one per task) succeed in most episodes under the training
randomization. Cloning their successful episodes gives PPO a start that already does the task, and PPO can
then improve it with the task's own reward. This is the simulated counterpart of the paper's human "play"
data used for task-aware initialisation, used for the weights instead of only for the start states.

What limits plain cloning: the clone adds its own error (the joint-reading noise passes through a policy
whose target follows the joint reading) and drifts into states the expert never visited. The earlier
open-loop expert (keyed on the episode clock) could not say what to do there; the closed-loop experts act
on the state, so DAgger can ask them: the clone drives, the expert labels every state it reaches, the
actor is refit on all pairs so far.

Steps (``train --demo-init``; settings in config/ppo.yaml ``demo_init``):

1. run the expert in an env with the run's randomization from the ready pose and keep the successful
   episodes only (the paper's filter for distillation data), as (actor observation, expert action);
2. fit the actor's observation normalizer to them and regress the actor's mean on the expert actions
   (MSE in the action head's units, so arm radians and hand units weigh alike);
3. ``dagger_rounds`` rounds of DAgger in the same env (``dagger``);
4. set the exploration std low (a grasp survives a few mm of noise, not a cm);
5. train PPO with the actor frozen for ``critic_warmup_iterations``, so the first policy-gradient
   steps use a critic that has learned the values of the cloned policy, not random ones; then continue
   at ``ppo_learning_rate``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from recipe_sim.experts import Expert, make_expert
from recipe_sim.ppo.action_head import ActionAffine
from recipe_sim.ppo.config import DemoInitConfig
from recipe_sim.ppo.evaluation import SUCCESS_LOG_KEY
from recipe_sim.vec_env import DEMO_SUCCESS_LOG_KEY


@dataclass(frozen=True)
class Demonstrations:
    """Successful scripted episodes as (observation, action) pairs, in episode order."""

    obs: np.ndarray  # (M, obs_dim) float32, the actor's observation group as the env produced it
    actions: np.ndarray  # (M, num_actions) float32, the expert's actions (before the env's action noise)
    episode: np.ndarray  # (M,) int, index of the kept episode each pair belongs to
    episodes_run: int
    seconds: float

    @property
    def episodes_kept(self) -> int:
        return int(self.episode.max()) + 1 if self.episode.size else 0

    @property
    def expert_success_rate(self) -> float:
        return self.episodes_kept / self.episodes_run if self.episodes_run else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "episodes_run": self.episodes_run,
            "episodes_kept": self.episodes_kept,
            "expert_success_rate": self.expert_success_rate,
            "pairs": int(self.obs.shape[0]),
            "seconds": round(self.seconds, 1),
        }

    def save(self, path: str | Path, key: str = "") -> Path:
        """Write the pairs (``key``: what they were collected for, checked by ``load``)."""
        path = Path(path)
        np.savez_compressed(
            path, obs=self.obs, actions=self.actions, episode=self.episode, episodes_run=self.episodes_run,
            seconds=self.seconds, key=np.array(key),
        )
        return path

    @classmethod
    def load(cls, path: str | Path, key: str = "") -> Demonstrations | None:
        """The demonstrations saved at ``path`` if they were collected for ``key``, else None."""
        path = Path(path)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as f:
            if "key" not in f or str(f["key"]) != key:
                return None
            return cls(f["obs"], f["actions"], f["episode"], int(f["episodes_run"]), float(f["seconds"]))


def collect_demonstrations(
    env: Any,
    episodes: int,
    max_rounds: int,
    policy_group: str = "policy",
    on_round: Callable[[int, int], None] | None = None,
    expert: Expert | None = None,
    **expert_kwargs: Any,
) -> Demonstrations:
    """Run the task's closed-loop expert (``recipe_sim.experts``) in ``env`` until ``episodes`` successful
    episodes are kept (or ``max_rounds`` x num_envs episodes were run); raises if none succeeded.

    ``expert``: the demonstrator (default ``make_expert(env, **expert_kwargs)``, e.g. ``grasp="wrap"``).
    """
    if episodes < 1 or max_rounds < 1:
        raise ValueError(f"episodes and max_rounds must be >= 1, got {episodes} and {max_rounds}")
    start = time.monotonic()
    expert = make_expert(env, **expert_kwargs) if expert is None else expert
    n = int(env.num_envs)
    obs = env.reset()
    buf_obs: list[list[np.ndarray]] = [[] for _ in range(n)]
    buf_act: list[list[np.ndarray]] = [[] for _ in range(n)]
    kept_obs: list[np.ndarray] = []
    kept_act: list[np.ndarray] = []
    run = 0
    limit = max_rounds * n
    next_round = n
    while len(kept_obs) < episodes and run < limit:
        actions = expert(obs)
        o = obs[policy_group].detach().cpu().numpy().astype(np.float32)
        a = actions.numpy().astype(np.float32)
        for i in range(n):
            buf_obs[i].append(o[i])
            buf_act[i].append(a[i])
        obs, _, dones, extras = env.step(actions)
        done_ids = np.flatnonzero(dones.detach().cpu().numpy())
        if done_ids.size == 0:
            continue
        kept_ok = extras["log"][DEMO_SUCCESS_LOG_KEY]  # per finished episode: demonstration criterion met
        success = np.asarray(kept_ok.detach().cpu().numpy(), dtype=bool).reshape(-1)
        for k, i in enumerate(done_ids):
            if success[k] and len(kept_obs) < episodes:
                kept_obs.append(np.stack(buf_obs[i]))
                kept_act.append(np.stack(buf_act[i]))
            buf_obs[i], buf_act[i] = [], []
            run += 1
        if on_round is not None and run >= next_round:
            on_round(run, len(kept_obs))
            next_round += n
    if not kept_obs:
        raise RuntimeError(
            f"the scripted expert succeeded in none of {run} episodes on "
            f"{getattr(env, 'object_names', '?')}; demo init needs objects and a randomization the "
            "expert handles (see ./dev bench expert_success)"
        )
    episode = np.concatenate([np.full(len(x), j) for j, x in enumerate(kept_obs)])
    return Demonstrations(
        np.concatenate(kept_obs), np.concatenate(kept_act), episode, run, time.monotonic() - start
    )


def action_head_of(actor: torch.nn.Module) -> ActionAffine:
    heads = [m for m in actor.mlp if isinstance(m, ActionAffine)]
    if len(heads) != 1:
        raise ValueError("behaviour cloning needs an actor with exactly one action head (ppo/action_head.py)")
    return heads[0]


def cloning_schedule(
    optimizer: torch.optim.Optimizer, schedule: str, batches: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule of ``batches`` cloning steps (``demo_init.lr_schedule``), stepped per batch.

    ``cosine`` falls from the configured rate to 0 by the last batch: at a constant rate Adam's last epochs
    keep hopping around the minimum they found, and a policy run in closed loop pays for that noise (the
    handover clone: loss 0.0074 -> 0.0055, nominal success 52.5% -> 69.8%; docs/specialists.md).
    """
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(batches, 1))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def clone_actor(
    actor: torch.nn.Module,
    demos: Demonstrations,
    cfg: DemoInitConfig,
    seed: int = 0,
    policy_group: str = "policy",
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fit the actor's normalizer and mean to ``demos``; returns the mean loss of every epoch.

    The loss is the squared error divided by the action head's scale, i.e. in units of the MLP's output.
    """
    obs = torch.as_tensor(demos.obs, dtype=torch.float32)
    target = torch.as_tensor(demos.actions, dtype=torch.float32)
    if obs.ndim != 2 or target.ndim != 2 or obs.shape[0] != target.shape[0] or obs.shape[0] == 0:
        raise ValueError(
            f"demonstrations must be matching non-empty 2-D arrays, "
            f"got {tuple(obs.shape)} and {tuple(target.shape)}"
        )
    if not (torch.isfinite(obs).all() and torch.isfinite(target).all()):
        raise ValueError("demonstrations contain NaN or inf")
    if obs.shape[1] != actor.obs_dim:
        raise ValueError(
            f"demonstration observations have {obs.shape[1]} entries, the actor takes {actor.obs_dim}"
        )
    scale = action_head_of(actor).scale.detach()
    if target.shape[1] != scale.numel():
        raise ValueError(
            f"demonstration actions have {target.shape[1]} entries, the actor outputs {scale.numel()}"
        )

    def batch(rows: torch.Tensor) -> TensorDict:
        return TensorDict({policy_group: obs[rows]}, batch_size=[len(rows)])

    actor.train()
    actor.update_normalization(batch(torch.arange(obs.shape[0])))
    params = [p for p in actor.mlp.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
    batches = cfg.epochs * math.ceil(obs.shape[0] / cfg.batch_size)
    schedule = cloning_schedule(optimizer, cfg.lr_schedule, batches)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(obs.shape[0], generator=gen)
        total, count = 0.0, 0
        for rows in order.split(cfg.batch_size):
            pred = actor(batch(rows))
            loss = (((pred - target[rows]) / scale) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
            count += len(rows)
        losses.append(total / count)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses


def relabel_rollouts(
    env: Any,
    policy: Callable[[Any], torch.Tensor],
    expert: Expert,
    steps: int,
    policy_group: str = "policy",
) -> tuple[np.ndarray, np.ndarray]:
    """DAgger: let ``policy`` drive ``env`` for ``steps`` steps and label every visited state with the
    expert's action there -> (observations, expert actions).

    The expert acts on the state, not on a clock (its phase follows what the learner did), so its label
    is what it would do from wherever the learner went: the states a clone drifts into get corrected.
    """
    obs = env.get_observations()
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for _ in range(steps):
        label = expert.act(obs)
        xs.append(obs[policy_group].detach().cpu().numpy().astype(np.float32))
        ys.append(label.numpy().astype(np.float32))
        with torch.no_grad():
            action = policy(obs)
        obs, _, _, _ = env.step(action)
    return np.concatenate(xs), np.concatenate(ys)


def dagger(
    env: Any,
    actor: torch.nn.Module,
    demos: Demonstrations,
    cfg: DemoInitConfig,
    seed: int = 0,
    policy_group: str = "policy",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``cfg.dagger_rounds`` rounds of DAgger after cloning: each runs the clone for one episode length in
    every env of ``env``, adds the expert-labelled states to the data set and refits the actor on it
    (``cfg.dagger_epochs`` passes, continuing from the current weights).

    Returns a summary (pairs added per round, the clone's success in each round's rollouts).
    """
    start = time.monotonic()
    expert = make_expert(env, **cfg.expert)  # the demonstrator's options: its labels mean the same
    obs_sets, act_sets = [demos.obs], [demos.actions]
    rounds: list[dict[str, Any]] = []
    steps = int(env.max_episode_length)
    epochs_cfg = replace(cfg, epochs=cfg.dagger_epochs)
    for r in range(cfg.dagger_rounds):
        actor.eval()
        env.reset()
        expert.reset()
        successes: list[float] = []

        def policy(o: Any) -> torch.Tensor:
            return actor(o)

        x, y = relabel_rollouts(_SuccessTap(env, successes), policy, expert, steps, policy_group)
        obs_sets.append(x)
        act_sets.append(y)
        data = Demonstrations(np.concatenate(obs_sets), np.concatenate(act_sets),
                              np.zeros(sum(len(o) for o in obs_sets), dtype=int), demos.episodes_run, 0.0)
        losses = clone_actor(actor, data, epochs_cfg, seed=seed + r + 1, policy_group=policy_group)
        rate = float(np.mean(successes)) if successes else math.nan
        rounds.append({"pairs": len(x), "clone_success": rate, "loss_last": losses[-1]})
        if log is not None:
            log(f"dagger round {r + 1}/{cfg.dagger_rounds}: clone succeeded in {rate:.0%} of "
                f"{len(successes)} episodes; {len(x)} relabelled pairs, loss {losses[-1]:.4f}")
    actor.eval()
    return {"rounds": rounds, "seconds": round(time.monotonic() - start, 1)}


class _SuccessTap:
    """Wraps an env to record the success flag of every episode that finishes (for DAgger's log)."""

    def __init__(self, env: Any, sink: list[float]) -> None:
        self._env, self._sink = env, sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def step(self, action: torch.Tensor) -> Any:
        out = self._env.step(action)
        done = out[2].detach().cpu().numpy()
        if done.any():
            self._sink.extend(out[3]["log"][SUCCESS_LOG_KEY].detach().cpu().numpy().reshape(-1).tolist())
        return out
