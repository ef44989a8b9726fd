"""``collect``: success-filtered rollouts of packaged specialists (or the scripted expert), with depth.

Paper Sec. III-C: roll each specialist out in the vectorized env under its training randomization, keep
only the episodes that succeed (decided when the episode resets), and distil those into the generalist.
Rendering is the cost (64 envs with 84x84 depth run at about a tenth of the physics-only rate), so this
runs in two passes over each batch of episodes:

1. simulate all envs without rendering, recording per policy step the simulator state and the applied
   controls (``RecipeVecEnv.applied_ctrl``/``applied_force``), the true joint and object positions, the
   goal, the specialist's input and its action, and per episode its object, randomization draws and
   first physics state;
2. for the episodes that succeeded only, render the head camera once per policy step from the recorded
   states, with the episode's camera pose/rotation/FOV noise (Table IV) written into its model, and pass
   each frame through ``to_policy_image`` (what the policy node does with the real D435).

Output: a zarr dataset (``recipe_policy.dataset``) that ``train_generalist`` reads; ``--append`` adds to
an existing one (same task, hand and depth image).

DAgger (``--learner REF``, Ross et al. 2011): a generalist drives the env instead, through the policy
node's action-chunk runtime on the env's live head depth (as ``eval_generalist`` runs it), while the
specialists label every state it visits with their own action. Every episode is kept: the states a
learner drifts into before it drops or knocks the object are the ones the specialists' successful
rollouts never show it. The same two passes record and render those episodes.

Example::

    ./dev run collect --specialists grasp_reach_can_medium --steps 100000 --out runs/distill/grasp_reach.zarr
    ./dev run collect --specialists grasp_reach_can_medium --learner grasp_reach --steps 40000 \
        --out runs/distill/grasp_reach.zarr --append          # one DAgger round
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec
from recipe_common.checkpoint_io import file_sha256, git_commit
from recipe_common.observation import policy_state
from recipe_common.policy_image import PolicyImageSpec
from recipe_common.position_filter import recorded_weight
from recipe_policy.dataset import DEPTH_MM_PER_M, Field, ReplayDataset, create_dataset, open_dataset
from recipe_policy.loading import GENERALIST_FILE, resolve
from recipe_policy.specialist import read_specialist

DEFAULT_EXPERT_RANDOMIZATION = "randomization_low_noise.yaml"
FLUSH_EPISODES = 32  # render and append after this many kept episodes
SUCCESS_FILTER = (
    "episode kept iff extras['log']['/episode/demo_success'] (the task's demonstration criterion: its "
    "success, or box_lift's lift with the fingertips on the stickers) is true when it resets (paper "
    "Sec. III-C); sources of kind 'dagger' keep every episode"
)


@dataclass
class Source:
    """One demonstrator: a packaged specialist or the task's scripted closed-loop expert, with its objects."""

    name: str
    kind: str  # specialist | scripted_expert
    task: str
    objects: list[str]
    randomization: Any  # RandomizationConfig
    make_policy: Callable[[Any], Callable[[Any], np.ndarray]]
    record: dict[str, Any] = field(default_factory=dict)
    # tasks.yaml keys of the env it acts in: a specialist's object-position filter (the env applies it to
    # the rows the actor reads, as in training; the dataset's obs_state holds the filtered rows)
    task_overrides: dict[str, Any] = field(default_factory=dict)


def specialist_source(ref: str, randomization_file: Path | None) -> Source:
    from recipe_sim.ppo.envs import randomization_config
    from recipe_sim.randomization import RandomizationConfig

    path = resolve(ref)
    pkg = read_specialist(path)
    meta = pkg.metadata
    if randomization_file is not None:
        rand = randomization_config(True, path=randomization_file)
        rand_name = str(randomization_file)
    else:  # the specialist's own training randomization, as recorded at training time
        rand = RandomizationConfig.from_dict(meta["randomization_values"])
        rand_name = f"training ({Path(str(meta.get('randomization_file') or 'randomization.yaml')).name})"
    actor = pkg.policy("ts")

    def make_policy(env: Any) -> Callable[[Any], np.ndarray]:
        return lambda obs: np.asarray(actor(obs["policy"].numpy()), dtype=np.float64)

    record = {
        "name": pkg.name,
        "kind": "specialist",
        "objects": list(meta["objects"]),
        "iteration": meta.get("iteration"),
        "git_commit": meta.get("git_commit"),
        "checkpoint_sha256": meta.get("sha256"),
        "policy_ts_sha256": file_sha256(path / "policy.ts"),
        "eval_success": {c: pkg.success_rate(c) for c in ("nominal", "randomized", "pushes")},
        "randomization": rand_name,
        "object_pos_filter": recorded_weight(meta),
    }
    return Source(pkg.name, "specialist", meta["task"], list(meta["objects"]), rand, make_policy, record,
                  {"object_pos_filter": record["object_pos_filter"]})


def expert_source(task: str, objects: list[str], randomization_file: Path | None) -> Source:
    from recipe_common.paths import config_path
    from recipe_sim.ppo.envs import randomization_config

    path = randomization_file or config_path(DEFAULT_EXPERT_RANDOMIZATION)
    rand = randomization_config(True, path=path)

    def make_policy(env: Any) -> Callable[[Any], np.ndarray]:
        from recipe_sim.experts import make_expert

        expert = make_expert(env)
        return lambda obs: expert(obs).numpy().astype(np.float64)

    name = "scripted_expert:" + "+".join(objects)
    record = {"name": name, "kind": "scripted_expert", "objects": list(objects), "randomization": str(path)}
    return Source(name, "scripted_expert", task, list(objects), rand, make_policy, record)


@dataclass
class Learner:
    """A deployable policy that drives the env during DAgger collection (the labels come from a Source)."""

    policy: Any  # DeployablePolicy
    runtime: Any  # RuntimeConfig
    latency_s: float
    record: dict[str, Any]

    def controller(self, env: Any) -> Callable[[Any], Any]:
        from recipe_sim.distill.eval_generalist import ChunkController

        return ChunkController(env, self.policy, self.runtime, self.latency_s)


def learner_from(
    ref: str, inference_steps: int, latency_s: float, initial_noise_scale: float | None = None
) -> Learner:
    from recipe_policy.config import load_runtime_config
    from recipe_policy.loading import load_policy

    policy = load_policy(ref, inference_steps=inference_steps, initial_noise_scale=initial_noise_scale)
    if not policy.spec.uses_depth:
        raise ValueError(f"--learner {ref}: a DAgger learner is a depth policy (a generalist)")
    path = resolve(ref)
    weights = path / GENERALIST_FILE if path.is_dir() else path
    record = {
        "ref": ref,
        "kind": policy.spec.kind,
        "sha256": file_sha256(weights) if weights.is_file() else None,
        "inference_steps": inference_steps or None,
        "initial_noise_scale": policy.model.initial_noise_scale if hasattr(policy, "model") else None,
        "latency_s": latency_s,
    }
    return Learner(policy, load_runtime_config(), latency_s, record)


def step_fields(state_dim: int, depth: PolicyImageSpec, nq: int, nu: int) -> dict[str, Field]:
    return {
        "state": Field((state_dim,), "float32"),
        "obs_state": Field((state_dim,), "float32"),
        "action": Field((robot_spec.ACTION_DIM,), "float32"),
        "depth": Field((depth.height, depth.width), "uint16"),
        "qpos": Field((nq,), "float64"),
        "ctrl": Field((nu,), "float64"),
        "force": Field((3,), "float64"),
    }


def episode_fields(nstate: int, draws: dict[str, np.ndarray]) -> dict[str, Field]:
    out = {
        "object": Field((), "int64"),
        "source": Field((), "int64"),
        "init_state": Field((nstate,), "float64"),
    }
    for k, v in draws.items():
        out[f"draw_{k}"] = Field(tuple(np.shape(v)), "float64")  # one episode's draw
    return out


@dataclass
class _Episode:
    object_name: str
    draws: dict[str, np.ndarray]
    init_state: np.ndarray
    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **row: np.ndarray) -> None:
        for k, v in row.items():
            self.rows.setdefault(k, []).append(v)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.stack(v) for k, v in self.rows.items()}


@dataclass
class CollectStats:
    episodes_run: int = 0
    episodes_kept: int = 0
    successes_kept: int = 0
    steps_kept: int = 0
    sim_s: float = 0.0
    render_s: float = 0.0
    write_s: float = 0.0


class Collector:
    """Runs sources into one dataset (created on the first flush, or appended to)."""

    def __init__(
        self,
        out: Path,
        task: str,
        hand: str,
        depth: PolicyImageSpec,
        num_envs: int,
        threads: int,
        append: bool,
        overwrite: bool,
        verify_replay: int = 0,
        progress: bool = True,
    ) -> None:
        self.out, self.task, self.hand, self.depth = out, task, hand, depth
        self.num_envs, self.threads = num_envs, threads
        self.append, self.overwrite = append, overwrite
        self.verify_replay = verify_replay
        self.progress = progress
        self.ds: ReplayDataset | None = None
        self.objects: list[str] = []
        self.sources: list[dict[str, Any]] = []
        self.stats = CollectStats()
        self._renderer_cache: tuple[tuple[str, ...], Any] | None = None
        if append and out.exists():
            # The dataset's record once, at start: a dataset of another task, hand or depth image is refused
            # before any collection, and a source of this run is numbered after the dataset's (read at the
            # first flush instead, the new source's record was dropped and its episodes were labelled as the
            # dataset's first source).
            rec = open_dataset(out).record
            if (rec.get("task"), rec.get("hand")) != (task, hand):
                raise ValueError(f"{out}: holds {rec.get('task')}/{rec.get('hand')}, not {task}/{hand}")
            if rec.get("depth", {}).get("width") != depth.width:
                raise ValueError(f"{out}: depth image {rec.get('depth')} differs from {depth}")
            self.objects = list(rec.get("objects", []))
            self.sources = list(rec.get("sources", []))

    # --- dataset ----------------------------------------------------------------------------------------

    def _open(self, env: Any, draws: dict[str, np.ndarray]) -> ReplayDataset:
        if self.ds is not None:
            return self.ds
        ph = env.physics
        if self.append and self.out.exists():
            ds = open_dataset(self.out, mode="a")  # checked against this run at construction
        else:
            record = {
                "task": self.task,
                "hand": self.hand,
                "has_goal": bool(env.task.has_goal),
                "state_layout": env.cfg["policy_obs"],
                "dt": float(env.dt),
                "substeps": int(env.substeps),
                "depth": {"camera": "head_depth", "units": "mm", **self.depth.__dict__},
                "success_filter": SUCCESS_FILTER,
                "start": "ready pose",
                "objects": [],
                "sources": [],
                "git": git_commit(),
                "counts": {},
            }
            fields = step_fields(sum(env.cfg["policy_obs"].values()), self.depth, ph.nq, ph.nu)
            ds = create_dataset(
                self.out, record, fields, episode_fields(ph.nstate, draws), overwrite=self.overwrite
            )
        self.ds = ds
        return ds

    def _flush(self, env: Any, source_id: int, kept: list[_Episode], randomization: Any) -> None:
        from recipe_sim.distill.replay import replay_physics

        if not kept:
            return
        ds = self._open(env, kept[0].draws)
        t0 = time.perf_counter()
        renderer = self._renderer(env)
        batch = []
        for ep in kept:
            arr = ep.arrays()
            if self.verify_replay > 0:
                q = replay_physics(
                    env.models.templates,
                    ep.object_name,
                    ep.draws,
                    randomization,
                    ep.init_state,
                    arr["ctrl"],
                    arr["force"],
                    env.substeps,
                )
                if not np.array_equal(q, arr["qpos"]):
                    raise RuntimeError(
                        f"replay of a kept {ep.object_name} episode differs from the recording by "
                        f"{np.abs(q - arr['qpos']).max():.3g} (non-deterministic simulation?)"
                    )
                self.verify_replay -= 1
            depth = renderer.render_episode(ep.object_name, ep.draws, randomization, arr["qpos"])
            arr["depth"] = np.round(depth * DEPTH_MM_PER_M).astype(np.uint16)
            if ep.object_name not in self.objects:
                self.objects.append(ep.object_name)
            meta = {
                "object": np.int64(self.objects.index(ep.object_name)),
                "source": np.int64(source_id),
                "init_state": ep.init_state,
                **{f"draw_{k}": v for k, v in ep.draws.items()},
            }
            batch.append((arr, meta))
        t1 = time.perf_counter()
        ds.append_episodes(batch)
        counts = dict(ds.record.get("counts", {}))
        for arr, meta in batch:
            name = self.objects[int(meta["object"])]
            c = counts.setdefault(name, {"episodes": 0, "steps": 0})
            c["episodes"] += 1
            c["steps"] += len(arr["action"])
        ds.update_record(
            objects=self.objects,
            sources=self.sources,
            counts=counts,
            episodes=ds.n_episodes,
            steps=ds.n_steps,
        )
        self.stats.render_s += t1 - t0
        self.stats.write_s += time.perf_counter() - t1

    def _renderer(self, env: Any) -> Any:
        from recipe_sim.distill.replay import EpisodeRenderer

        key = tuple(env.models.templates)
        if self._renderer_cache is None or self._renderer_cache[0] != key:
            if self._renderer_cache is not None:
                self._renderer_cache[1].close()
            self._renderer_cache = (key, EpisodeRenderer(env.models.templates, self.depth))
        return self._renderer_cache[1]

    def close(self) -> None:
        if self._renderer_cache is not None:
            self._renderer_cache[1].close()
            self._renderer_cache = None

    # --- simulation -------------------------------------------------------------------------------------

    def run(
        self,
        source: Source,
        steps: int,
        seed: int,
        episode_length: int | None = None,
        learner: Learner | None = None,
    ) -> None:
        """Simulate ``source`` until ``steps`` kept policy steps are in the dataset; with ``learner``, the
        learner acts and ``source`` only labels (DAgger: every episode kept)."""
        from tqdm import tqdm

        from recipe_sim.vec_env import DEMO_SUCCESS_LOG_KEY, RecipeVecEnv

        overrides: dict[str, Any] = {**source.task_overrides, "init_states": None}
        if episode_length is not None:
            overrides["episode_length"] = episode_length
        env = RecipeVecEnv(
            self.task,
            self.num_envs,
            objects=source.objects,
            seed=seed,
            randomization=source.randomization,
            depth_camera="head_depth" if learner is not None else None,
            num_threads=self.threads,
            hand=self.hand,
            task_overrides=overrides,
        )
        record = {**source.record, "seed": seed}
        if learner is not None:
            record.update(
                kind="dagger", labeler=source.name, labeler_kind=source.kind, learner=learner.record
            )
        self.sources.append(record)
        source_id = len(self.sources) - 1
        policy = source.make_policy(env)
        drive = learner.controller(env) if learner is not None else None
        idx, ph = env.index, env.physics
        oa = idx.object_qpos_adr
        n = env.num_envs

        def start(i: int) -> _Episode:
            oid = int(env.models.object_id[i])
            return _Episode(
                env.object_names[oid],
                {k: v[i].copy() for k, v in env.episode_draws.items()},
                ph.state[i].copy(),
            )

        running = [start(i) for i in range(n)]
        kept: list[_Episode] = []
        done_steps = 0
        bar = tqdm(
            total=steps,
            desc=f"collect {source.name}",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        try:
            while done_steps < steps:
                t0 = time.perf_counter()
                obs = env.get_observations()
                qpos = ph.qpos.copy()
                goal = env.task.goal.numpy().astype(np.float64) if env.task.has_goal else None
                state = policy_state(qpos[:, idx.actuated_qpos_adr], qpos[:, oa : oa + 3], goal)
                obs_state = obs["policy"].numpy()
                actions = np.asarray(policy(obs), dtype=np.float64)
                executed = actions if drive is None else drive(obs).numpy().astype(np.float64)
                _, _, dones, extras = env.step(executed)
                for i in range(n):
                    running[i].add(
                        state=state[i],
                        obs_state=obs_state[i],
                        action=actions[i],
                        qpos=qpos[i],
                        ctrl=env.applied_ctrl[i],
                        force=env.applied_force[i],
                    )
                done_ids = np.flatnonzero(dones.numpy())
                if done_ids.size:
                    success = np.asarray(extras["log"][DEMO_SUCCESS_LOG_KEY].numpy(), dtype=bool).reshape(-1)
                    for k, i in enumerate(done_ids):
                        self.stats.episodes_run += 1
                        if (success[k] or drive is not None) and done_steps < steps:
                            kept.append(running[i])
                            length = len(running[i].rows["action"])
                            done_steps += length
                            self.stats.episodes_kept += 1
                            self.stats.successes_kept += int(success[k])
                            self.stats.steps_kept += length
                            bar.update(length)
                        running[i] = start(i)
                self.stats.sim_s += time.perf_counter() - t0
                if len(kept) >= FLUSH_EPISODES:
                    self._flush(env, source_id, kept, source.randomization)
                    kept = []
                    bar.set_postfix(kept=f"{self.stats.episodes_kept}/{self.stats.episodes_run}")
            self._flush(env, source_id, kept, source.randomization)
        finally:
            bar.close()
            env.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="collect",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--specialists",
        nargs="*",
        default=[],
        help="packaged specialists (names under data/specialists, or folders); every sub-task of a grouping",
    )
    p.add_argument(
        "--expert",
        nargs="*",
        default=[],
        metavar="OBJECT",
        help="objects to demonstrate with the task's scripted expert (recipe_sim.experts: every task)",
    )
    p.add_argument(
        "--task", default=None, help="task (default: the specialists'; grasp_reach for --expert alone)"
    )
    p.add_argument(
        "--steps", type=int, default=100_000, help="kept policy steps in total, split evenly over sources"
    )
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="mujoco.rollout threads")
    p.add_argument("--seed", type=int, default=100, help="collection seed (source k uses seed + k)")
    p.add_argument(
        "--randomization",
        type=Path,
        default=None,
        help="randomization YAML for every source (default: each specialist's training randomization; "
        f"the expert: config/{DEFAULT_EXPERT_RANDOMIZATION})",
    )
    p.add_argument(
        "--episode-length", type=int, default=None, help="override the task's episode length (tests)"
    )
    p.add_argument("--out", type=Path, required=True, help="dataset folder (.zarr)")
    p.add_argument("--append", action="store_true", help="append to an existing dataset")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument(
        "--verify-replay",
        type=int,
        default=2,
        metavar="N",
        help="re-simulate the first N kept episodes from their first state and controls and require "
        "the recorded states bit for bit (default 2)",
    )
    p.add_argument(
        "--learner",
        default=None,
        metavar="REF",
        help="DAgger: this generalist (load_policy ref) drives the env and the specialists/expert only "
        "label its states; every episode is kept",
    )
    p.add_argument("--inference-steps", type=int, default=2,
                   help="DDIM steps per chunk for --learner (default 2, what the policy node runs)")
    p.add_argument("--initial-noise-scale", type=float, default=None, metavar="S",
                   help="--learner's sampler starts from S x N(0, I) (default: its profile's)")
    p.add_argument("--latency-s", type=float, default=0.05,
                   help="observation-to-chunk latency for --learner (as eval_generalist)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if not a.specialists and not a.expert:
        print("collect: error: name --specialists and/or --expert objects", file=sys.stderr)
        return 2
    if a.steps < 1 or a.num_envs < 1:
        print("collect: error: --steps and --num-envs must be >= 1", file=sys.stderr)
        return 2
    try:
        sources = [specialist_source(s, a.randomization) for s in a.specialists]
        tasks = {s.task for s in sources}
        task = a.task or (tasks.pop() if len(tasks) == 1 else "grasp_reach")
        if any(s.task != task for s in sources):
            raise ValueError(
                f"specialists of different tasks ({sorted({s.task for s in sources})}): one dataset per task"
            )
        if a.expert:
            sources.append(expert_source(task, list(a.expert), a.randomization))
        learner = (learner_from(a.learner, a.inference_steps, a.latency_s, a.initial_noise_scale)
                   if a.learner else None)
        if learner is not None and learner.policy.spec.task != task:
            raise ValueError(f"--learner {a.learner} is a {learner.policy.spec.task} policy, not {task}")
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"collect: error: {exc}", file=sys.stderr)
        return 1
    depth = PolicyImageSpec.for_camera()
    try:  # an --append dataset of another task, hand or image is refused here, before collecting
        col = Collector(
            a.out,
            task,
            robot_spec.DEFAULT_HAND,
            depth,
            a.num_envs,
            a.threads,
            a.append,
            a.overwrite,
            a.verify_replay,
            progress=not a.no_progress,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"collect: error: {exc}", file=sys.stderr)
        return 1
    per_source = -(-a.steps // len(sources))
    t0 = time.perf_counter()
    try:
        for k, src in enumerate(sources):
            col.run(src, per_source, a.seed + k, a.episode_length, learner)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"collect: error: {exc}", file=sys.stderr)
        return 1
    finally:
        col.close()
    wall = time.perf_counter() - t0
    s = col.stats
    ds = open_dataset(a.out)
    rate = s.steps_kept / wall if wall > 0 else float("nan")
    ds_w = open_dataset(a.out, mode="a", validate=False)
    ds_w.update_record(
        last_collect={
            "wall_s": round(wall, 1),
            "kept_steps_per_s": round(rate, 1),
            "episodes_run": s.episodes_run,
            "episodes_kept": s.episodes_kept,
            "successes_kept": s.successes_kept,
            "sim_s": round(s.sim_s, 1),
            "render_s": round(s.render_s, 1),
            "write_s": round(s.write_s, 1),
            "load_avg_1m": os.getloadavg()[0],
        }
    )
    if learner is not None:
        print(f"DAgger: the learner succeeded in {s.successes_kept} of the {s.episodes_kept} kept episodes")
    print(
        f"kept {s.episodes_kept}/{s.episodes_run} episodes ({s.steps_kept} steps) in {wall:.0f} s "
        f"({rate:.0f} kept steps/s; sim {s.sim_s:.0f} s, render {s.render_s:.0f} s, "
        f"write {s.write_s:.0f} s); "
        f"dataset {a.out}: {ds.n_episodes} episodes, {ds.n_steps} steps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
