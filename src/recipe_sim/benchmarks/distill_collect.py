"""Collection speed: kept policy steps with depth per second, and the time 100k of them take (limit 20 min).

Runs ``collect``'s two passes (simulate without rendering and keep successful episodes; render the kept
ones from their recorded states) for ``--steps`` kept steps of a packaged specialist into a temporary
dataset, and prints the rate split into simulation, rendering and writing, beside the physics-only and
render-every-env rates of the same env (what collecting by rendering every env step would cost).

    ./dev bench distill_collect                     # 5,000 kept steps of grasp_reach_can_medium, 64 envs
    ./dev bench distill_collect --steps 20000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIMIT_MIN_PER_100K = 20.0


def env_rate(depth: bool, num_envs: int, steps: int, specialist: str) -> float:
    """env steps/s of the specialist driving the env, with or without rendering every env's depth."""
    from recipe_policy.loading import load_policy
    from recipe_policy.specialist import read_specialist
    from recipe_sim.distill.eval_generalist import env_overrides
    from recipe_sim.randomization import RandomizationConfig
    from recipe_sim.vec_env import RecipeVecEnv

    pol = load_policy(specialist)
    meta = read_specialist(pol.source).metadata
    env = RecipeVecEnv(
        meta["task"],
        num_envs,
        objects=meta["objects"],
        seed=1,
        randomization=RandomizationConfig.from_dict(meta["randomization_values"]),
        depth_camera="head_depth" if depth else None,
        task_overrides=env_overrides(pol),
    )
    try:
        env.step(pol.predict_batch(env.get_observations()["policy"].numpy()))
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(pol.predict_batch(env.get_observations()["policy"].numpy()))
        return steps * num_envs / (time.perf_counter() - t0)
    finally:
        env.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specialist", default="grasp_reach_can_medium")
    p.add_argument("--steps", type=int, default=5000, help="kept policy steps to collect")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument(
        "--peer-steps", type=int, default=10, help="env steps for the physics-only/render-all rates"
    )
    a = p.parse_args()
    from recipe_common import robot_spec
    from recipe_common.policy_image import PolicyImageSpec
    from recipe_sim.distill.collect import Collector, specialist_source

    load0 = os.getloadavg()[0]
    src = specialist_source(a.specialist, None)
    with tempfile.TemporaryDirectory() as tmp:
        col = Collector(
            Path(tmp) / "bench.zarr",
            src.task,
            robot_spec.DEFAULT_HAND,
            PolicyImageSpec.for_camera(),
            a.num_envs,
            2,
            append=False,
            overwrite=True,
            verify_replay=0,
            progress=False,
        )
        t0 = time.perf_counter()
        try:
            col.run(src, a.steps, seed=12345)
        finally:
            col.close()
        wall = time.perf_counter() - t0
    s = col.stats
    rate = s.steps_kept / wall
    minutes = 100_000 / rate / 60
    print(f"load average {load0:.2f} (start) {os.getloadavg()[0]:.2f} (end)")
    print(
        f"collect {a.specialist}, {a.num_envs} envs: kept {s.episodes_kept}/{s.episodes_run} episodes, "
        f"{s.steps_kept} steps in {wall:.0f} s = {rate:.0f} kept steps/s (sim {s.sim_s:.0f} s, render "
        f"{s.render_s:.0f} s, write {s.write_s:.0f} s)"
    )
    verdict = "OK" if minutes <= LIMIT_MIN_PER_100K else "OVER"
    print(
        f"-> 100k kept steps with depth in {minutes:.1f} min (limit {LIMIT_MIN_PER_100K:.0f} min: {verdict})"
    )
    phys = env_rate(False, a.num_envs, a.peer_steps, a.specialist)
    full = env_rate(True, a.num_envs, a.peer_steps, a.specialist)
    print(
        f"peers, same env: physics only {phys:.0f} env steps/s; rendering every env step "
        f"{full:.0f} env steps/s "
        f"(-> 100k steps in {100_000 / full / 60:.1f} min before any success filter)"
    )
    return 0 if np.isfinite(rate) else 1


if __name__ == "__main__":
    sys.exit(main())
