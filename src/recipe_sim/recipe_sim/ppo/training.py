"""Train one specialist end to end: env, runner, optional resume, checkpoints, export, curve file.

Shared by the train CLI and the learning benchmark so that both produce the same run directory:

    <run_dir>/model_<it>.pt + model_<it>.metadata.json   checkpoints (rsl-rl dict + metadata)
    <run_dir>/events.out.tfevents.*                        TensorBoard
    <run_dir>/exported/policy.{ts,onnx,json}               deployable actor (normalizer baked in)
    <run_dir>/training_curve.json                          per-iteration metrics + export check
    <run_dir>/demonstrations.npz                           the cloned expert episodes (demo init only)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipe_common.position_filter import recorded_weight
from recipe_sim.ppo.action_head import set_action_std
from recipe_sim.ppo.checkpoint import CheckpointError, latest_checkpoint, metadata_path, read_metadata
from recipe_sim.ppo.config import PPOConfig
from recipe_sim.ppo.demo_init import Demonstrations, clone_actor, collect_demonstrations, dagger
from recipe_sim.ppo.envs import SubTask, make_env
from recipe_sim.ppo.runner import IterationStats, RunInfo, SpecialistRunner
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.tasks.config import load_task_configs

CURVE_FILE = "training_curve.json"
DEMOS_FILE = "demonstrations.npz"


@dataclass
class TrainRequest:
    sub: SubTask
    config: PPOConfig
    run_dir: Path
    seed: int
    randomization: RandomizationConfig
    iterations: int
    randomization_file: Path | None = None  # where ``randomization`` came from, if not the default YAML
    overlay: Path | None = None
    init_states: Path | None = None
    no_init_states: bool = False
    resume: Path | None = None
    time_budget_s: float | None = None  # stop after the iteration that crosses this much training time
    demo_init: bool = False  # clone the scripted expert before PPO (config.demo_init; ppo/demo_init.py)
    export: bool = True
    verbose: bool = False
    task_overrides: dict[str, Any] | None = None  # tasks.yaml keys for this run (tests, benchmarks)
    command_path: Path | None = None  # driver YAML: train and demonstrate through the driver's command path
    extra_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    history: list[IterationStats]
    export_max_abs_diff: dict[str, float] | None
    wall_time_s: float


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    # Legacy global numpy RNG: third-party code may draw from it; the env uses its own generators.
    np.random.seed(seed % (2**32))  # noqa: NPY002


def train_specialist(
    req: TrainRequest,
    on_iteration: Callable[[IterationStats], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Build the env and runner, train, save, export and verify; returns the final checkpoint and curve.

    With ``req.demo_init`` the time budget covers the demonstrations and the cloning too.
    """
    torch.set_num_threads(req.config.torch_threads)
    seed_everything(req.seed)
    start = time.monotonic()
    if req.resume is not None:
        weight = load_task_configs().get(req.sub.task).with_overrides(req.task_overrides).object_pos_filter
        check_resume_compatible(req.resume, req.sub, weight)
    demo_env = make_demo_env(req) if req.demo_init else None
    try:
        return _train(req, start, demo_env, on_iteration, log)
    finally:
        if demo_env is not None:
            demo_env.close()


def _train(
    req: TrainRequest,
    start: float,
    demo_env: Any,
    on_iteration: Callable[[IterationStats], None] | None,
    log: Callable[[str], None] | None,
) -> TrainResult:
    demos = collect_demos(req, demo_env, log) if demo_env is not None else None
    env = make_env(
        req.sub,
        req.config.num_envs,
        req.seed,
        req.randomization,
        overlay=req.overlay,
        init_states=req.init_states,
        no_init_states=req.no_init_states,
        num_threads=req.config.env_threads,
        task_overrides=req.task_overrides,
        command_path=req.command_path,
    )
    try:
        info = RunInfo(
            task=req.sub.task,
            object_group=req.sub.label,
            objects=req.sub.objects,
            seed=req.seed,
            extra={
                "randomization": _randomization_summary(req.randomization),
                # The values themselves, so eval reproduces the training randomization anywhere.
                "randomization_values": req.randomization.to_dict(),
                "randomization_file": None if req.randomization_file is None else str(req.randomization_file),
                "task_aware_init": env.init_states is not None,
                "init_states": None if env.init_states is None else str(env.cfg["init_states"]),
                "overlay": None if req.overlay is None else str(req.overlay),
                "command_path": None if req.command_path is None else str(req.command_path),
                "task_overrides": req.task_overrides,
                "policy_obs_layout": env.cfg.get("policy_obs"),
                "object_pos_filter": env.cfg["object_pos_filter"],
                **req.extra_metadata,
            },
        )
        runner = SpecialistRunner(
            env, req.config, req.run_dir, info, on_iteration=on_iteration, verbose=req.verbose
        )
        if req.resume is not None:
            runner.load(str(req.resume))
            restore_demo_schedule(runner, req, info)
        if demos is not None:
            info.extra["demo_init"] = clone_into(runner, demos, req, log, demo_env)
        budget = req.time_budget_s
        if budget is not None:
            budget = max(budget - (time.monotonic() - start), 1.0)
        runner.train(req.iterations, time_budget_s=budget)
        wall = time.monotonic() - start
        checkpoint = latest_checkpoint(req.run_dir)
        diffs = None
        if req.export:
            _, diffs = runner.export(req.run_dir / "exported", info={
                "obs_layout": env.cfg.get("policy_obs"), "object_pos_filter": env.cfg["object_pos_filter"]})
        write_curve(req.run_dir / CURVE_FILE, runner.history, req, diffs)
        return TrainResult(req.run_dir, checkpoint, list(runner.history), diffs, wall)
    finally:
        env.close()


def make_demo_env(req: TrainRequest) -> Any:
    """The env the expert demonstrates in (and DAgger relabels in): the run's randomization, ready pose."""
    if req.config.demo_init is None:
        raise ValueError(
            f"--demo-init: profile {req.config.profile!r} has no demo_init section (config/ppo.yaml)"
        )
    if req.resume is not None:
        raise ValueError("--demo-init starts a new specialist; it cannot be combined with --resume")
    return make_env(
        req.sub,
        req.config.num_envs,
        req.seed + 1,  # other episodes than the training env's first ones
        req.randomization,
        overlay=req.overlay,
        no_init_states=True,
        num_threads=req.config.env_threads,
        task_overrides=req.task_overrides,
        command_path=req.command_path,
    )


def collect_demos(req: TrainRequest, env: Any, log: Callable[[str], None] | None = None) -> Demonstrations:
    """The scripted expert's successful episodes in the demo env (run's randomization, ready pose)."""
    cfg = req.config.demo_init
    assert cfg is not None

    def progress(run: int, kept: int) -> None:
        if log is not None:
            log(f"demonstrations: {kept}/{cfg.episodes} successful of {run} scripted episodes")

    key = demos_key(req)
    saved = Demonstrations.load(req.run_dir / DEMOS_FILE, key)
    if saved is not None and saved.episodes_kept >= cfg.episodes:
        # A run started over (interrupted before its first checkpoint) reuses what it collected.
        if log is not None:
            log(f"demonstrations: reusing {saved.episodes_kept} episodes of {req.run_dir / DEMOS_FILE}")
        return saved
    demos = collect_demonstrations(env, cfg.episodes, cfg.max_rounds, on_round=progress, **cfg.expert)
    req.run_dir.mkdir(parents=True, exist_ok=True)
    demos.save(req.run_dir / DEMOS_FILE, key)
    if log is not None:
        s = demos.summary()
        log(
            f"demonstrations: kept {s['episodes_kept']} of {s['episodes_run']} episodes "
            f"({s['expert_success_rate']:.0%} expert success), {s['pairs']} pairs in {s['seconds']} s"
        )
    return demos


def demos_key(req: TrainRequest) -> str:
    """What demonstrations depend on: task, objects, seed, randomization, task overrides, and the experts'
    code, options and grasps (a digest of recipe_sim/experts/*.py and config/grasps.yaml)."""
    import hashlib

    from recipe_common.paths import config_path
    from recipe_sim import experts

    demo_cfg = req.config.demo_init
    expert_options = {} if demo_cfg is None else dict(demo_cfg.expert)
    digest = hashlib.sha256()
    for f in [*sorted(Path(experts.__file__).resolve().parent.glob("*.py")), config_path("grasps.yaml")]:
        digest.update(Path(f).read_bytes())
    return json.dumps({"task": req.sub.task, "objects": list(req.sub.objects), "seed": req.seed,
                       "randomization": req.randomization.to_dict(), "overrides": req.task_overrides,
                       "overlay": None if req.overlay is None else str(req.overlay),
                       "command_path": None if req.command_path is None else str(req.command_path),
                       "experts": digest.hexdigest()[:16], "expert_options": expert_options},
                      sort_keys=True)


def clone_into(
    runner: SpecialistRunner,
    demos: Demonstrations,
    req: TrainRequest,
    log: Callable[[str], None] | None,
    demo_env: Any = None,
) -> dict[str, Any]:
    """Behaviour-clone ``demos`` into the runner's actor (then ``dagger_rounds`` of DAgger in ``demo_env``),
    lower its std, freeze it for the critic warm-up, and keep its observation normalizer at the clone's
    statistics for the whole fine-tuning (``freeze_obs_normalizer``; SpecialistRunner.freeze_actor_normalizer
    says why)."""
    cfg = req.config.demo_init
    assert cfg is not None
    t = time.monotonic()
    losses = clone_actor(runner.actor, demos, cfg, seed=req.seed)
    seconds = time.monotonic() - t
    if log is not None:
        log(
            f"behaviour cloning: {cfg.epochs} epochs, loss {losses[0]:.4f} -> {losses[-1]:.4f} "
            f"in {seconds:.1f} s"
        )
    dagger_summary = None
    if cfg.dagger_rounds > 0 and demo_env is not None:
        dagger_summary = dagger(demo_env, runner.actor, demos, cfg, seed=req.seed, log=log)
    set_action_std(runner.actor, cfg.arm_std, cfg.hand_std)
    runner.freeze_actor(cfg.critic_warmup_iterations, then_learning_rate=cfg.ppo_learning_rate)
    if cfg.freeze_obs_normalizer:
        runner.freeze_actor_normalizer()
    return {
        **demos.summary(),
        "bc_loss_first": losses[0],
        "bc_loss_last": losses[-1],
        "bc_seconds": round(seconds, 1),
        "dagger": dagger_summary,
        "demonstrations_file": DEMOS_FILE,
    }


def restore_demo_schedule(runner: SpecialistRunner, req: TrainRequest, info: RunInfo) -> None:
    """Resuming a demo-initialised run: keep its record and its fine-tuning schedule (the actor frozen for
    what is left of the critic warm-up, then ``ppo_learning_rate``), not the profile's from-scratch rate."""
    assert req.resume is not None
    record = read_metadata(req.resume).get("demo_init")
    cfg = req.config.demo_init
    if not record or cfg is None:
        return
    info.extra["demo_init"] = record
    left = max(cfg.critic_warmup_iterations - runner.current_learning_iteration, 0)
    runner.freeze_actor(left, then_learning_rate=cfg.ppo_learning_rate)
    if cfg.freeze_obs_normalizer:
        runner.freeze_actor_normalizer()


def check_resume_compatible(checkpoint: Path, sub: SubTask, object_pos_filter: float) -> None:
    """A resumed run must continue the same task on the same objects, with the actor reading the object
    position through the same filter (metadata, when present; ``object_pos_filter``: this run's weight)."""
    if not metadata_path(checkpoint).is_file():
        return
    meta = read_metadata(checkpoint)
    if meta["task"] != sub.task:
        raise CheckpointError(
            f"{checkpoint}: trained on task {meta['task']!r}, cannot resume as {sub.task!r}"
        )
    if list(meta["objects"]) != list(sub.objects):
        raise CheckpointError(
            f"{checkpoint}: trained on objects {meta['objects']}, this run uses "
            f"{list(sub.objects)}; pick the matching --group/--subtask"
        )
    trained = recorded_weight(meta)
    if trained != object_pos_filter:
        raise CheckpointError(
            f"{checkpoint}: trained behind object_pos_filter {trained}, this run's env applies "
            f"{object_pos_filter} (config/tasks.yaml tasks.{sub.task}.object_pos_filter): the actor would "
            f"read another input; set the weight back or start a new run"
        )


def write_curve(
    path: Path, history: list[IterationStats], req: TrainRequest, export_diffs: dict[str, float] | None
) -> None:
    data = {
        "task": req.sub.task,
        "object_group": req.sub.label,
        "objects": list(req.sub.objects),
        "seed": req.seed,
        "num_envs": req.config.num_envs,
        "profile": req.config.profile,
        "export_max_abs_diff": export_diffs,
        "iterations": [_finite(s.to_dict()) for s in history],
    }
    path.write_text(json.dumps(data, indent=1) + "\n")


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _finite(v)
        elif isinstance(v, float) and not np.isfinite(v):
            out[k] = None
        else:
            out[k] = v
    return out


def _randomization_summary(cfg: RandomizationConfig) -> dict[str, bool]:
    return {name: bool(getattr(cfg, name).enabled) for name in cfg.item_names()}
