"""Train one specialist end to end: env, runner, optional resume, checkpoints, export, curve file.

Shared by the train CLI and the learning benchmark so that both produce the same run directory:

    <run_dir>/model_<it>.pt + model_<it>.metadata.json   checkpoints (rsl-rl dict + metadata)
    <run_dir>/events.out.tfevents.*                        TensorBoard
    <run_dir>/exported/policy.{ts,onnx,json}               deployable actor (normalizer baked in)
    <run_dir>/training_curve.json                          per-iteration metrics + export check
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

from recipe_sim.ppo.checkpoint import CheckpointError, latest_checkpoint, metadata_path, read_metadata
from recipe_sim.ppo.config import PPOConfig
from recipe_sim.ppo.envs import SubTask, make_env
from recipe_sim.ppo.runner import IterationStats, RunInfo, SpecialistRunner
from recipe_sim.randomization import RandomizationConfig

CURVE_FILE = "training_curve.json"


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
    export: bool = True
    verbose: bool = False
    task_overrides: dict[str, Any] | None = None  # tasks.yaml keys for this run (tests, benchmarks)
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
    req: TrainRequest, on_iteration: Callable[[IterationStats], None] | None = None
) -> TrainResult:
    """Build the env and runner, train, save, export and verify; returns the final checkpoint and curve."""
    torch.set_num_threads(req.config.torch_threads)
    seed_everything(req.seed)
    if req.resume is not None:
        check_resume_compatible(req.resume, req.sub)
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
                "task_overrides": req.task_overrides,
                "policy_obs_layout": env.cfg.get("policy_obs"),
                **req.extra_metadata,
            },
        )
        runner = SpecialistRunner(
            env, req.config, req.run_dir, info, on_iteration=on_iteration, verbose=req.verbose
        )
        if req.resume is not None:
            runner.load(str(req.resume))
        start = time.monotonic()
        runner.train(req.iterations, time_budget_s=req.time_budget_s)
        wall = time.monotonic() - start
        checkpoint = latest_checkpoint(req.run_dir)
        diffs = None
        if req.export:
            _, diffs = runner.export(req.run_dir / "exported", info={"obs_layout": env.cfg.get("policy_obs")})
        write_curve(req.run_dir / CURVE_FILE, runner.history, req, diffs)
        return TrainResult(req.run_dir, checkpoint, list(runner.history), diffs, wall)
    finally:
        env.close()


def check_resume_compatible(checkpoint: Path, sub: SubTask) -> None:
    """A resumed run must continue the same task on the same objects (metadata, when present)."""
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
