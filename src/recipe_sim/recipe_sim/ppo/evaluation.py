"""Success rate of a trained specialist per object and condition (nominal, randomized, pushes).

Episode counting is unbiased on purpose: with auto-resetting envs, "the first N episodes that finish"
over-counts short episodes, and successful episodes end early, so that estimate would flatter the
policy. Here every env contributes exactly its first ``rounds`` episodes, whatever their length.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipe_common.position_filter import recorded_weight
from recipe_sim.disturbances import CONDITIONS as DISTURBANCE_CONDITIONS
from recipe_sim.ppo.action_head import install_action_head
from recipe_sim.ppo.checkpoint import check_state_matches, load_checkpoint, read_metadata
from recipe_sim.ppo.config import PPOConfig, config_from_dict
from recipe_sim.randomization import RandomizationConfig

SUCCESS_LOG_KEY = "/episode/success"
CONDITIONS = ("nominal", "randomized", "pushes", *DISTURBANCE_CONDITIONS)


def condition_disturbance(condition: str) -> str | None:
    """The scripted disturbance of a condition (``disturb-poke`` -> ``poke``), None for the others."""
    return condition.removeprefix("disturb-") if condition in DISTURBANCE_CONDITIONS else None

PolicyFn = Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class EpisodeBatch:
    success: np.ndarray  # (episodes,) bool
    length: np.ndarray  # (episodes,) policy steps
    episode_return: np.ndarray  # (episodes,)

    @property
    def success_rate(self) -> float:
        return float(self.success.mean()) if self.success.size else math.nan


def build_actor(config: PPOConfig, obs: Any, num_actions: int) -> torch.nn.Module:
    """The actor network of ``config`` (with its action head) for an env's observations; weights to load."""
    from rsl_rl.utils import resolve_class, resolve_obs_groups

    cfg = config.to_rsl_rl()
    with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints the resolved groups
        obs_groups = resolve_obs_groups(obs, cfg["obs_groups"], ["actor", "critic"])
    actor_class, actor_cfg = resolve_class(cfg["actor"])
    actor = actor_class(obs, obs_groups, "actor", num_actions, **actor_cfg)
    # Placeholder offset/scale: the checkpoint's buffers replace them on load.
    install_action_head(actor, torch.zeros(num_actions), torch.ones(num_actions))
    return actor


def load_actor(checkpoint: str | Path, env: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Actor of a checkpoint (safe load, shape-checked) for ``env``, and the checkpoint's metadata."""
    meta = read_metadata(checkpoint)
    trained, served = recorded_weight(meta), recorded_weight(env.cfg)
    if trained != served:  # the actor would read an object position unlike any it was trained on
        raise ValueError(
            f"{checkpoint}: trained behind object_pos_filter {trained}, but the env applies {served}; build "
            f"the env with task_overrides=recorded_task_overrides(metadata)"
        )
    config_dict = dict(meta["config"])
    profile = config_dict.pop("profile", "checkpoint")
    config = config_from_dict(config_dict, profile)
    actor = build_actor(config, env.get_observations(), int(env.num_actions))
    state = load_checkpoint(checkpoint)["actor_state_dict"]
    check_state_matches(state, actor, f"{checkpoint}: actor")
    actor.load_state_dict(state)
    actor.eval()
    return actor, meta


def deterministic_policy(actor: torch.nn.Module) -> PolicyFn:
    def act(obs: Any) -> torch.Tensor:
        with torch.no_grad():
            return actor(obs)

    return act


def run_episodes(
    env: Any,
    policy: PolicyFn,
    rounds: int,
    on_step: Callable[[Any], None] | None = None,
    max_steps: int | None = None,
) -> EpisodeBatch:
    """Run until every env has finished ``rounds`` episodes; returns them ordered by (round, env)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    n = int(env.num_envs)
    finished = np.zeros(n, dtype=int)
    success = np.zeros((rounds, n), dtype=bool)
    length = np.zeros((rounds, n), dtype=int)
    returns = np.zeros((rounds, n))
    running = np.zeros(n)
    steps_per_episode = int(env.max_episode_length)
    limit = max_steps if max_steps is not None else (rounds + 1) * steps_per_episode + 10
    obs = env.get_observations()
    for _ in range(limit):
        if (finished >= rounds).all():
            break
        obs, rewards, dones, extras = env.step(policy(obs))
        if on_step is not None:
            on_step(env)
        running += rewards.detach().cpu().numpy()
        done_ids = np.flatnonzero(dones.detach().cpu().numpy())
        if done_ids.size == 0:
            continue
        log = extras.get("log", {})
        if SUCCESS_LOG_KEY not in log:
            raise KeyError(f"env reported finished episodes without extras['log'][{SUCCESS_LOG_KEY!r}]")
        done_success = np.asarray(log[SUCCESS_LOG_KEY].detach().cpu().numpy(), dtype=bool).reshape(-1)
        done_length = log.get("/episode/length")
        done_length = None if done_length is None else done_length.detach().cpu().numpy().reshape(-1)
        for k, i in enumerate(done_ids):
            r = finished[i]
            if r < rounds:
                success[r, i] = done_success[k]
                length[r, i] = int(done_length[k]) if done_length is not None else 0
                returns[r, i] = running[i]
            finished[i] += 1
            running[i] = 0.0
    if (finished < rounds).any():
        raise RuntimeError(
            f"evaluation stopped after {limit} steps with envs {np.flatnonzero(finished < rounds)} "
            f"short of {rounds} episodes"
        )
    return EpisodeBatch(success.reshape(-1), length.reshape(-1), returns.reshape(-1))


def condition_randomization(
    condition: str,
    force_scale: float | None = None,
    force_probability: float | None = None,
    path: str | Path | None = None,
) -> RandomizationConfig:
    """nominal: all off; randomized: Table IV (config/randomization.yaml, or ``path``); pushes: only
    random forces; disturb-*: all off (the scripted disturbance comes from ``condition_disturbance``)."""
    from dataclasses import replace

    from recipe_sim.ppo.envs import randomization_config

    if condition == "nominal" or condition in DISTURBANCE_CONDITIONS:
        return randomization_config(False, path=path)  # still checks that a given file exists
    if condition == "randomized":
        cfg = randomization_config(True, path=path)
    elif condition == "pushes":
        cfg = randomization_config(False, force=True, path=path)
    else:
        raise ValueError(f"unknown condition {condition!r}; known: {list(CONDITIONS)}")
    force = cfg.object_force
    if force_scale is not None:
        force = replace(force, scale=float(force_scale))
    if force_probability is not None:
        force = replace(force, probability=float(force_probability))
    return replace(cfg, object_force=force)


def summarize(results: dict[str, dict[str, EpisodeBatch]]) -> dict[str, Any]:
    """JSON-ready table: condition -> object -> {success_rate, episodes, mean_length, mean_return}."""
    out: dict[str, Any] = {}
    for condition, per_object in results.items():
        rows = {name: _batch_dict(b) for name, b in per_object.items()}
        all_success = np.concatenate([b.success for b in per_object.values()]) if per_object else np.zeros(0)
        rows["_overall"] = {
            "success_rate": float(all_success.mean()) if all_success.size else None,
            "episodes": int(all_success.size),
        }
        out[condition] = rows
    return out


def _batch_dict(b: EpisodeBatch) -> dict[str, Any]:
    return {
        "success_rate": b.success_rate,
        "episodes": int(b.success.size),
        "mean_length": float(b.length.mean()) if b.length.size else None,
        "mean_return": float(b.episode_return.mean()) if b.episode_return.size else None,
    }


def plot_success(summary: dict[str, Any], path: str | Path, title: str) -> Path:
    """Grouped bar chart of success rate per object (and overall) for each condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = list(summary)
    objects = [k for k in next(iter(summary.values())) if k != "_overall"] + ["_overall"]
    width = 0.8 / max(len(conditions), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.9 * len(objects)), 4.0))
    x = np.arange(len(objects))
    for j, cond in enumerate(conditions):
        values = [100.0 * (summary[cond][o]["success_rate"] or 0.0) for o in objects]
        ax.bar(x + (j - (len(conditions) - 1) / 2) * width, values, width, label=cond)
    ax.set_xticks(x, [o.lstrip("_") for o in objects], rotation=30, ha="right")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


class VideoRecorder:
    """Colour frames of one env from a named scene camera (collision geometry: what the physics uses)."""

    def __init__(
        self, env: Any, camera: str = "third_view", width: int = 424, height: int = 240, env_id: int = 0
    ) -> None:
        import mujoco

        from recipe_sim.render import geom_groups

        self.env, self.env_id = env, env_id
        model = env.physics.models[env_id]
        width = min(width, model.vis.global_.offwidth)
        height = min(height, model.vis.global_.offheight)
        self._renderer = mujoco.Renderer(model, height, width)
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = geom_groups(collision_only=True)
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = int(env.index.cameras[camera])
        self.frames: list[np.ndarray] = []

    def __call__(self, env: Any) -> None:
        import mujoco

        data = env.physics.scratch_data(self.env_id)
        mujoco.mjv_updateScene(
            env.physics.models[self.env_id],
            data,
            self._option,
            None,
            self._camera,
            mujoco.mjtCatBit.mjCAT_ALL,
            self._renderer.scene,
        )
        self.frames.append(self._renderer.render().copy())

    def write(self, path: str | Path, fps: float) -> Path:
        import imageio.v2 as imageio

        path = Path(path)
        with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=8) as writer:
            for frame in self.frames:
                writer.append_data(frame)
        return path

    def close(self) -> None:
        self._renderer.close()


def episodes_per_env(episodes: int, max_envs: int) -> tuple[int, int]:
    """(num_envs, rounds) so that num_envs * rounds >= episodes with as few rounds as possible."""
    if episodes < 1 or max_envs < 1:
        raise ValueError(f"episodes and max_envs must be >= 1, got {episodes}, {max_envs}")
    rounds = math.ceil(episodes / max_envs)
    return math.ceil(episodes / rounds), rounds


def take(batch: EpisodeBatch, n: int) -> EpisodeBatch:
    return EpisodeBatch(batch.success[:n], batch.length[:n], batch.episode_return[:n])


def evaluate_objects(
    task: str,
    objects: Sequence[str],
    randomization: RandomizationConfig,
    episodes: int,
    max_envs: int,
    seed: int,
    policy_for: Callable[[Any], PolicyFn],
    init_states: Path | None = None,
    task_overrides: dict[str, Any] | None = None,
    threads: int = 2,
    on_object: Callable[[str, EpisodeBatch], None] | None = None,
    disturbance: str | None = None,
    command_path: Path | None = None,
) -> dict[str, EpisodeBatch]:
    """``episodes`` episodes per object, each object in its own env (seed ``seed + k`` for object k).
    ``disturbance``: one scripted disturbance of that kind per episode (``recipe_sim.disturbances``).
    ``command_path``: a driver YAML; the policy's targets then reach the joints as the robot's driver would
    pass them (``ppo.envs.make_env``): success as deployed.

    ``policy_for(env)`` builds the policy for that env (a checkpoint's actor, a scripted expert).
    Without ``init_states`` episodes start from the ready pose. ``on_object`` reports each object as
    it finishes (progress for long evaluations).
    """
    from recipe_sim.ppo.envs import SubTask, make_env

    num_envs, rounds = episodes_per_env(episodes, max_envs)
    out: dict[str, EpisodeBatch] = {}
    for k, name in enumerate(objects):
        sub = SubTask(task, f"single:{name}", 0, (name,))
        env = make_env(
            sub,
            num_envs,
            seed + k,
            randomization,
            init_states=init_states,
            no_init_states=init_states is None,
            num_threads=threads,
            task_overrides=task_overrides,
            command_path=command_path,
        )
        try:
            if disturbance is not None:
                env.set_disturbance(disturbance, seed + k)
            out[name] = take(run_episodes(env, policy_for(env), rounds), episodes)
        finally:
            env.close()
        if on_object is not None:
            on_object(name, out[name])
    return out


def objects_of(meta: dict[str, Any], requested: Sequence[str] | None) -> list[str]:
    return list(requested) if requested else list(meta["objects"])
