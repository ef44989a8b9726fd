"""``eval_generalist``: deployable policies in closed loop in the sim, on the specialists' own episodes.

Every policy (``load_policy`` refs: generalists, specialists) drives the vectorized env through the one
``ActionChunkRuntime`` the policy node uses: per env an observation window built from the env's noisy
``policy`` observation (``policy_state`` layout) and its rendered head depth (``to_policy_image``), an
inference every ``spec.inference_period`` (5 Hz for the diffusion policy) whose chunk arrives
``--latency-s`` later, chunks blended and latency-compensated by timestamps, and the robot commanded at
the env's 10 Hz (holding its last command while the runtime has none). ``--depth-age-s`` /
``--object-age-s`` hand the policy head depth / object positions that old (``InputAge``), as a stack with
10 Hz cameras and 5 Hz perception delivers them.

Same episodes: every env runs exactly one episode per object and condition (as many envs as episodes),
so the initial states, randomization draws and per-step noise sequences are identical for every policy
evaluated with the same seed; the specialists named by ``--specialists`` (default: the packaged
specialists of the generalist's dataset) run on them too. Conditions: nominal / randomized (``
--randomization``, default the low-noise training profile) / pushes / disturb-poke, -pull, -push, -drag
(``recipe_sim.disturbances``: one scripted disturbance per episode, the paper's Fig. 6; ``disturbances`` =
the four). Episodes start from the ready pose.
Writes ``eval.json`` and ``eval.png`` (and with ``--video N`` an MP4 of N episodes of the first policy).

Example::

    ./dev run eval_generalist --policy runs/generalist/gr --episodes 256 --seed 4242 --out runs/eval_gr
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipe_common import robot_spec
from recipe_common.checkpoint_io import write_json
from recipe_common.observation import field_slice
from recipe_common.policy_image import PolicyImageSpec, to_policy_image
from recipe_policy.config import TIMESTEP_SPACINGS
from recipe_policy.interface import DeployablePolicy
from recipe_policy.runtime import ActionChunkRuntime, ObservationWindow, RuntimeConfig
from recipe_sim.disturbances import ALL as ALL_DISTURBANCES
from recipe_sim.disturbances import expand_conditions
from recipe_sim.ppo.evaluation import CONDITIONS

DEFAULT_RANDOMIZATION = "randomization_low_noise.yaml"
OBJECT_POS = field_slice("object_pos")  # in the env's ``policy`` observation rows


def predict_many(policy: DeployablePolicy, states: np.ndarray, depths: np.ndarray | None) -> np.ndarray:
    """(B, n, D), (B, n, H, W) -> (B, action_horizon, 26): batched when the policy can, else one by one."""
    batch = getattr(policy, "predict_batch", None)
    if batch is not None:
        if policy.spec.kind == "specialist":
            return np.asarray(batch(states[:, -1]))[:, None, :]
        return np.asarray(batch(states, depths))
    return np.stack(
        [
            policy.predict(s, None if depths is None else d)
            for s, d in zip(states, depths if depths is not None else [None] * len(states), strict=True)
        ]
    )


def env_overrides(policy: DeployablePolicy, episode_length: int | None = None) -> dict[str, Any]:
    """The tasks.yaml keys of an env that serves ``policy`` its rows: episodes from the ready pose, and the
    object-position filter the policy was trained behind (the env applies it to the batches it serves)."""
    out: dict[str, Any] = {"init_states": None, "object_pos_filter": policy.spec.object_pos_filter}
    if episode_length is not None:
        out["episode_length"] = episode_length
    return out


@dataclass
class RuntimeStats:
    inferences: int = 0
    holds: int = 0
    rejected: int = 0
    commands: int = 0


@dataclass(frozen=True)
class InputAge:
    """How old the head depth and the object position are when the policy sees them (seconds; applied in
    whole env steps).

    In the sim both are rendered / measured at the observation's step; on the robot they are not: the
    camera frame is up to a frame period old when the 10 Hz tick assembles the observation, and the object
    position comes from a 5 Hz perception node. ``eval_generalist --depth-age-s / --object-age-s``
    reproduce that here (the joint positions stay current, as the robot's 100+ Hz joint states are), so the
    sim says what the stack's input ages cost before a trial runs.
    """

    depth_s: float = 0.0
    object_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.depth_s >= 0 and self.object_s >= 0):
            raise ValueError(f"input ages must be >= 0 s, got depth {self.depth_s}, object {self.object_s}")

    def steps(self, dt: float) -> tuple[int, int]:
        """(depth, object) ages in env steps of ``dt``."""
        return round(self.depth_s / dt), round(self.object_s / dt)


class ChunkController:
    """Drives every env of a RecipeVecEnv with one policy through per-env ActionChunkRuntimes."""

    def __init__(self, env: Any, policy: DeployablePolicy, runtime: RuntimeConfig, latency_s: float,
                 input_age: InputAge | None = None) -> None:
        self.env, self.policy, self.spec = env, policy, policy.spec
        n = int(env.num_envs)
        self.depth_age, self.object_age = (input_age or InputAge()).steps(float(env.dt))
        keep = max(self.depth_age, self.object_age) + 1
        # per env: the last `keep` (object position, policy image) pairs, newest last (cleared at reset)
        self.history: list[deque[tuple[np.ndarray, np.ndarray | None]]] = [
            deque(maxlen=keep) for _ in range(n)
        ]
        self.runtimes = [ActionChunkRuntime(self.spec, runtime) for _ in range(n)]
        self.latency = float(latency_s) if self.spec.action_horizon > 1 else 0.0
        self.dt = float(env.dt)
        self.hold = np.tile(robot_spec.joint_targets_to_action(env.ready_q, env.hand), (n, 1))
        self.last = self.hold.copy()
        self.pending: list[list[tuple[np.ndarray, float, float]]] = [[] for _ in range(n)]
        self.depth_k: Any = None
        self.stats = RuntimeStats()
        if self.spec.uses_depth and getattr(env, "depth", None) is None:
            raise ValueError("this policy needs depth: build the env with depth_camera='head_depth'")
        if self.spec.uses_depth:
            head = PolicyImageSpec.for_camera()
            self.depth_k = PolicyImageSpec(
                env.depth.width, env.depth.height, head.fovy_deg, head.near_m, head.far_m
            ).intrinsics()

    def _depth(self, frame: np.ndarray) -> np.ndarray:
        assert self.spec.depth is not None
        return to_policy_image(frame, self.depth_k, self.spec.depth)

    def _aged(self, i: int, state: np.ndarray,
              image: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The observation as the policy gets it with ``input_age``: object position and depth from that
        many steps earlier (the episode's first one until there are enough)."""
        if self.depth_age == self.object_age == 0:
            return state, image
        hist = self.history[i]
        hist.append((state[OBJECT_POS].copy(), image))
        state = state.copy()
        state[OBJECT_POS] = hist[max(0, len(hist) - 1 - self.object_age)][0]
        return state, hist[max(0, len(hist) - 1 - self.depth_age)][1]

    def __call__(self, obs: Any) -> torch.Tensor:
        env = self.env
        clock = env.episode_length_buf.cpu().numpy().astype(int)
        states = obs["policy"].numpy().astype(np.float64)
        depth = obs["depth"].numpy()[:, 0] if self.spec.uses_depth else None
        due: list[tuple[int, ObservationWindow]] = []
        for i, rt in enumerate(self.runtimes):
            t = clock[i] * self.dt
            if clock[i] == 0:  # a new episode (the env reset itself)
                rt.reset()
                self.pending[i].clear()
                self.history[i].clear()
                self.last[i] = self.hold[i]
            state, image = self._aged(i, states[i], None if depth is None else self._depth(depth[i]))
            rt.add_observation(t, state, image)
            window = rt.request_inference(t)
            if window is not None:
                due.append((i, window))
        if due:
            s = np.stack([w.states for _, w in due])
            d = np.stack([w.depths for _, w in due]) if self.spec.uses_depth else None
            chunks = predict_many(self.policy, s, d)
            self.stats.inferences += len(due)
            for (i, w), chunk in zip(due, chunks, strict=True):
                self.pending[i].append((chunk, w.t_obs, w.t_obs + self.latency))
        out = self.last.copy()
        for i, rt in enumerate(self.runtimes):
            t = clock[i] * self.dt
            keep = []
            for chunk, t_obs, t_arrive in self.pending[i]:
                if t_arrive <= t + 1e-9:
                    if not rt.add_chunk(chunk, t_obs, t_arrive):
                        self.stats.rejected += 1
                else:
                    keep.append((chunk, t_obs, t_arrive))
            self.pending[i] = keep
            res = rt.action(t)
            self.stats.commands += 1
            if res.action is None:
                self.stats.holds += 1
            else:
                out[i] = res.action
        self.last = out
        return torch.as_tensor(out, dtype=torch.float32)


def evaluate_policy_on_object(
    policy: DeployablePolicy,
    task: str,
    obj: str,
    randomization: Any,
    episodes: int,
    seed: int,
    runtime: RuntimeConfig,
    latency_s: float,
    threads: int = 2,
    on_step: Callable[[Any], None] | None = None,
    episode_length: int | None = None,
    disturbance: str | None = None,
    input_age: InputAge | None = None,
) -> tuple[Any, RuntimeStats]:
    """One episode in each of ``episodes`` envs (seeded: the same episodes for every policy); with
    ``disturbance``, one scripted disturbance of that kind per episode (``recipe_sim.disturbances``)."""
    from recipe_sim.ppo.evaluation import run_episodes
    from recipe_sim.vec_env import RecipeVecEnv

    overrides = env_overrides(policy, episode_length)
    env = RecipeVecEnv(
        task,
        episodes,
        objects=[obj],
        seed=seed,
        randomization=randomization,
        depth_camera="head_depth" if policy.spec.uses_depth else None,
        num_threads=threads,
        hand=policy.spec.hand,
        task_overrides=overrides,
    )
    try:
        if disturbance is not None:
            env.set_disturbance(disturbance, seed)
        ctl = ChunkController(env, policy, runtime, latency_s, input_age)
        batch = run_episodes(env, ctl, 1, on_step=on_step)
    finally:
        env.close()
    return batch, ctl.stats


def default_objects(policy: DeployablePolicy) -> list[str]:
    """The policy's objects, sorted. Object k runs on seed + k, and a dataset records its objects in the
    order their first kept episodes arrived (box_lift: wide, small, lift_box for one generalist and small,
    wide, lift_box for the next), so the policy's own order gave two generalists of one task different
    episodes under one seed."""
    return sorted(policy.spec.objects)


def specialists_of(policy: DeployablePolicy) -> list[str]:
    """The packaged specialists a generalist was distilled from (its dataset record), DAgger labelers too."""
    rec = getattr(policy, "record", {}) or {}
    names: list[str] = []
    for s in rec.get("dataset", {}).get("sources", []) or []:
        if s.get("kind") == "specialist":
            names.append(s["name"])
        elif s.get("kind") == "dagger" and s.get("labeler_kind") == "specialist":  # collect --learner
            names.append(s["labeler"])
    return list(dict.fromkeys(names))


def plot_comparison(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(report["conditions"])
    labels = list(report["policies"])
    objects = [o for o in report["conditions"][conds[0]][labels[0]] if o != "_overall"] + ["_overall"]
    fig, axes = plt.subplots(
        1,
        len(conds),
        figsize=(max(5.0, 1.2 * len(objects) * len(labels)) * len(conds) / 2 + 2, 4.0),
        squeeze=False,
    )
    width = 0.8 / max(1, len(labels))
    for ax, cond in zip(axes[0], conds, strict=True):
        x = np.arange(len(objects))
        for j, lab in enumerate(labels):
            vals = [
                100.0 * (report["conditions"][cond][lab].get(o, {}).get("success_rate") or 0.0)
                for o in objects
            ]
            bars = ax.bar(x + (j - (len(labels) - 1) / 2) * width, vals, width, label=lab)
            for b, v in zip(bars, vals, strict=True):
                ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.0f}", ha="center", fontsize=7)
        ax.set_xticks(x, [o.lstrip("_") for o in objects], rotation=20, ha="right")
        ax.set_ylim(0, 105)
        ax.set_title(cond)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("success (%)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"{report['task']}: {report['episodes_per_object']} episodes per object, seed {report['seed']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evaluate(
    policies: dict[str, DeployablePolicy],
    objects: Sequence[str],
    conditions: Sequence[str],
    randomization: Path | None,
    episodes: int,
    seed: int,
    runtime: RuntimeConfig,
    latency_s: float,
    threads: int = 2,
    log: Callable[[str], None] | None = None,
    input_age: InputAge | None = None,
) -> dict[str, Any]:
    """Success per condition, policy and object (seed + k for object k, as ``eval`` does)."""
    from recipe_sim.ppo.evaluation import condition_disturbance, condition_randomization

    tasks = {p.spec.task for p in policies.values()}
    if len(tasks) != 1:
        raise ValueError(f"policies of different tasks {sorted(tasks)}")
    task = tasks.pop()
    out: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for cond in conditions:
        rand = condition_randomization(cond, path=randomization)
        out[cond] = {}
        for label, pol in policies.items():
            rows: dict[str, Any] = {}
            succ_all = []
            for k, obj in enumerate(objects):
                t0 = time.perf_counter()
                batch, st = evaluate_policy_on_object(
                    pol, task, obj, rand, episodes, seed + k, runtime, latency_s, threads,
                    disturbance=condition_disturbance(cond), input_age=input_age,
                )
                rows[obj] = {
                    "success_rate": batch.success_rate,
                    "episodes": int(batch.success.size),
                    "mean_length": float(batch.length.mean()),
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
                succ_all.append(batch.success)
                stats.setdefault(label, RuntimeStats())
                for f in ("inferences", "holds", "rejected", "commands"):
                    setattr(stats[label], f, getattr(stats[label], f) + getattr(st, f))
                if log:
                    log(
                        f"{cond:10s} {label:28s} {obj:14s} success {100 * batch.success_rate:5.1f}% "
                        f"({batch.success.size} episodes, {rows[obj]['wall_s']:.0f} s)"
                    )
            allv = np.concatenate(succ_all)
            rows["_overall"] = {"success_rate": float(allv.mean()), "episodes": int(allv.size)}
            out[cond][label] = rows
    return {"task": task, "conditions": out, "runtime_stats": {k: vars(v) for k, v in stats.items()}}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eval_generalist",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--policy",
        nargs="+",
        required=True,
        metavar="REF",
        help="policies to evaluate (load_policy refs; LABEL=REF to name one)",
    )
    p.add_argument(
        "--specialists",
        nargs="*",
        default=None,
        help="specialists to compare on the same episodes (default: those the first policy was "
        "distilled from; pass none to skip)",
    )
    p.add_argument("--objects", nargs="+", default=None, help="objects (default: the first policy's, sorted)")
    p.add_argument("--conditions", nargs="+", default=["nominal", "randomized", "pushes"],
                   choices=[*CONDITIONS, ALL_DISTURBANCES],
                   help="nominal, randomized, pushes, disturb-poke/-pull/-push/-drag; disturbances: the four")
    p.add_argument("--inference-steps", type=int, default=None,
                   help="DDIM steps per chunk for the generalists (default: their profile's)")
    p.add_argument("--initial-noise-scale", type=float, default=None, metavar="S",
                   help="the generalists' sampler starts from S x N(0, I); 0: deterministic chunks "
                   "(default: their profile's)")
    p.add_argument("--timestep-spacing", choices=TIMESTEP_SPACINGS, default=None,
                   help="the generalists' DDIM timestep spacing (default: their profile's; trailing: few "
                   "steps start from t = T-1)")
    p.add_argument("--episodes", type=int, default=64, help="episodes per object and condition (one per env)")
    p.add_argument(
        "--seed", type=int, default=4242, help="evaluation seed (keep apart from training/collection)"
    )
    p.add_argument(
        "--randomization",
        type=Path,
        default=None,
        help=f"randomization YAML of 'randomized'/'pushes' (default config/{DEFAULT_RANDOMIZATION})",
    )
    p.add_argument(
        "--latency-s",
        type=float,
        default=0.05,
        help="time from an observation to its chunk being usable (chunked policies; default 0.05)",
    )
    p.add_argument("--depth-age-s", type=float, default=0.0, metavar="S",
                   help="the policy sees the head depth S seconds old, as the deployed stack does (whole env "
                   "steps; default 0)")
    p.add_argument("--object-age-s", type=float, default=0.0, metavar="S",
                   help="the policy sees the object position S seconds old (default 0)")
    p.add_argument("--runtime", nargs="+", default=[], metavar="KEY=VALUE",
                   help="action-chunk runtime settings instead of config/policy.yaml's (ensemble_decay=0)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--video", type=int, default=0, metavar="N", help="MP4 of N episodes of the first policy")
    return p


def _labelled(refs: Sequence[str]) -> dict[str, str]:
    out = {}
    for r in refs:
        label, _, ref = r.partition("=") if "=" in r else (Path(r).name or r, "", r)
        out[label] = ref
    return out


def main(argv: list[str] | None = None) -> int:
    from recipe_common.config import key_values
    from recipe_common.paths import config_path
    from recipe_policy.config import load_runtime_config
    from recipe_policy.loading import load_policy

    a = build_parser().parse_args(argv)
    a.conditions = expand_conditions(a.conditions)
    if a.episodes < 1:
        print("eval_generalist: error: --episodes must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    try:
        policies = {label: load_policy(ref, inference_steps=a.inference_steps or 0,
                                       initial_noise_scale=a.initial_noise_scale,
                                       timestep_spacing=a.timestep_spacing)
                    for label, ref in _labelled(a.policy).items()}
        first = next(iter(policies.values()))
        specs = specialists_of(first) if a.specialists is None else a.specialists
        for ref in specs:
            policies[f"specialist:{Path(ref).name}"] = load_policy(ref)
        objects = a.objects or default_objects(first)
        rand = a.randomization or config_path(DEFAULT_RANDOMIZATION)
        runtime = load_runtime_config(**key_values(a.runtime, "--runtime"))
        input_age = InputAge(a.depth_age_s, a.object_age_s)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"eval_generalist: error: {exc}", file=sys.stderr)
        return 1
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = evaluate(
        policies,
        objects,
        a.conditions,
        rand,
        a.episodes,
        a.seed,
        runtime,
        a.latency_s,
        a.threads,
        log=lambda s: print(f"eval_generalist: {s}", file=sys.stderr),
        input_age=input_age,
    )
    report = {
        **result,
        "policies": {
            k: {
                "kind": p.spec.kind,
                "n_obs_steps": p.spec.n_obs_steps,
                "action_horizon": p.spec.action_horizon,
                "inference_period": p.spec.inference_period,
                "uses_depth": p.spec.uses_depth,
                "uses_object_pos": p.spec.uses_object_pos,
                "ref": dict(_labelled(a.policy)).get(k, k),
                "sampling": p.model.sampling() if hasattr(p, "model") else None,
            }
            for k, p in policies.items()
        },
        "objects": objects,
        "episodes_per_object": a.episodes,
        "seed": a.seed,
        "randomization": str(rand),
        "latency_s": a.latency_s,
        "input_age_s": {"depth": a.depth_age_s, "object": a.object_age_s},
        "runtime": vars(runtime),
        "start": "ready",
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    spec_labels = [k for k in policies if k.startswith("specialist:")]
    if spec_labels:
        ratios: dict[str, Any] = {}
        for cond, per in result["conditions"].items():
            ref = (
                per[spec_labels[0]]["_overall"]["success_rate"]
                if len(spec_labels) == 1
                else float(np.mean([per[s]["_overall"]["success_rate"] for s in spec_labels]))
            )
            ratios[cond] = {
                k: (per[k]["_overall"]["success_rate"] / ref if ref else None)
                for k in per
                if k not in spec_labels
            }
        report["ratio_to_specialists"] = ratios
    write_json(a.out / "eval.json", report)
    plot_comparison(report, a.out / "eval.png")
    if a.video > 0:
        _video(first, objects[0], a, rand, runtime)
    for cond, per in result["conditions"].items():
        line = ", ".join(f"{k} {100 * v['_overall']['success_rate']:.1f}%" for k, v in per.items())
        print(f"eval_generalist: {cond}: {line}", file=sys.stderr)
    print(f"eval_generalist: wrote {a.out / 'eval.json'} and {a.out / 'eval.png'}", file=sys.stderr)
    return 0


def _video(
    policy: DeployablePolicy, obj: str, a: argparse.Namespace, rand: Path, runtime: RuntimeConfig
) -> None:
    from recipe_sim.ppo.evaluation import VideoRecorder, condition_randomization, run_episodes
    from recipe_sim.vec_env import RecipeVecEnv

    cond = condition_randomization(a.conditions[0], path=rand)
    env = RecipeVecEnv(
        policy.spec.task,
        1,
        objects=[obj],
        seed=a.seed,
        randomization=cond,
        depth_camera="head_depth" if policy.spec.uses_depth else None,
        num_threads=1,
        hand=policy.spec.hand,
        task_overrides=env_overrides(policy),
    )
    try:
        rec = VideoRecorder(env)
        run_episodes(env, ChunkController(env, policy, runtime, a.latency_s), a.video, on_step=rec)
        rec.write(a.out / "episodes.mp4", fps=1.0 / float(env.dt))
        rec.close()
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
