"""Deploy benchmark: the stack on the twin vs the same policy's closed-loop sim evaluation on the same spawns.

    ./dev bench deploy_bench                       # grasp_reach, 20 trials, one process per node
    ./dev bench deploy_bench --trials 10 --composed --object-source truth

Runs ``./dev demo`` (recipe_bringup.embedded: the stack from recipe_bringup.stack, perception, the policy
node, the twin's trial service) for N trials, then the vectorized env from the same object poses, goals and
hands (``recipe_sim.trials.sim_success_on_trial_spawns``) with the same policy. Prints and writes (JSON):
observation-to-command latency through ROS (p50/p99), achieved policy and command rates against the
policy's nominal rate (the limit), CPU use of each stack process, and success deploy vs sim with the
trials where they disagree and a paired test; the sim side also through the driver's command path,
to tell what the driver's filter costs from what the stack costs, and for a generalist over several
sampler draws per spawn (``--sim-draws``: one sim episode is one draw of its noise). The machine's load
average is printed too: other work on the two cores slows every figure here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from recipe_bringup import embedded
from recipe_bringup.stack import load_deploy_defaults
from recipe_common.paths import workspace_dir
from recipe_common.tasks import TASK_NAMES
from recipe_policy.interface import PolicySpec


def sim_success(policy_ref: str, task: str, obj: str, seeds: list[int],
                draws: int = 1) -> tuple[PolicySpec, np.ndarray, np.ndarray]:
    """The same policy on the same spawns in the vectorized env, through the node's runtime: commanding the
    actuators directly, and through the driver's command path (start ramp, step and velocity caps,
    joint-limit margins). Returns the policy's spec and the two (draws, len(seeds)) success arrays.

    A generalist samples its chunks: one sim episode per spawn is one draw of its noise, as lucky or unlucky
    as one deploy trial. ``draws`` runs each spawn that many times, the sampler seeded 0, 1, ... (draw 0 as
    the node starts); a specialist is deterministic and gets one. Each run gets a freshly loaded policy."""
    from recipe_gr1_driver.command_path import driver_command_paths
    from recipe_policy.loading import load_policy
    from recipe_policy.node import PolicyNodeConfig
    from recipe_sim.trials import sim_success_on_trial_spawns

    # The generalist samples as the deployed node does (config/policy_node.yaml).
    sampling = PolicyNodeConfig.load().sampling()

    def load(draw: int) -> Any:
        policy = load_policy(policy_ref, **sampling)
        if hasattr(policy, "generator"):
            policy.generator.manual_seed(draw)
        return policy

    first = load(0)
    spec, n = first.spec, draws if hasattr(first, "generator") else 1
    direct = np.array([sim_success_on_trial_spawns(load(d), task, obj, seeds) for d in range(n)])
    driven = np.array([sim_success_on_trial_spawns(load(d), task, obj, seeds,
                                                   command_path=driver_command_paths()) for d in range(n)])
    return spec, direct, driven


def paired_test(deploy: np.ndarray, sim: np.ndarray) -> dict[str, float | int]:
    """Deploy vs sim on the same spawns: the spawns only one of them fails, and the exact McNemar p-value
    (two-sided binomial test of the discordant pairs). With 20 trials a 10-point gap is often noise: the
    figure says whether the stack loses episodes the sim wins, or just drew a few unlucky ones."""
    from scipy.stats import binomtest

    d, m = np.asarray(deploy, bool), np.asarray(sim, bool)
    deploy_only, sim_only = int(np.sum(m & ~d)), int(np.sum(d & ~m))
    n = deploy_only + sim_only
    p = 1.0 if n == 0 else float(binomtest(deploy_only, n, 0.5).pvalue)
    return {"deploy_only_failures": deploy_only, "sim_only_failures": sim_only, "p_value": p}


def _paired_text(t: dict[str, float | int]) -> str:
    return (f"deploy-only failures {t['deploy_only_failures']}, sim-only {t['sim_only_failures']}; "
            f"exact McNemar p = {t['p_value']:.2f}")


def _percents(draws: np.ndarray) -> str:
    return " ".join(f"{100 * v:.0f}" for v in draws.mean(axis=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="grasp_reach", choices=TASK_NAMES)
    p.add_argument("--policy", default="")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--composed", action="store_true", help="all nodes in one process (default: one each)")
    p.add_argument("--object-source", choices=("perception", "truth"), default="perception")
    p.add_argument("--sim-draws", type=int, default=5,
                   help="sim episodes per spawn for a generalist, one per sampler seed (default 5)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if a.sim_draws < 1:
        p.error(f"--sim-draws must be >= 1, got {a.sim_draws}")
    defaults = load_deploy_defaults()
    policy = a.policy or defaults.tasks[a.task].policy
    obj = defaults.tasks[a.task].sim_object
    seed = defaults.seed if a.seed is None else a.seed
    out = a.out or workspace_dir() / "runs" / "bench" / f"deploy_{datetime.now():%Y%m%d-%H%M%S}"
    load0 = os.getloadavg()
    args = ["--task", a.task, "--policy", policy, "--trials", str(a.trials), "--seed", str(seed), "--out",
            str(out), "--video-trials", "1", "--object-source", a.object_source]
    if not a.composed:
        args.append("--processes")
    code = embedded.main(args)
    if code != 0:
        return code
    summary = json.loads((out / "summary.json").read_text())
    seeds = [r["seed"] for r in summary["results"]]
    deploy = np.array([r["outcome"] == "success" for r in summary["results"]])
    spec, sim_draws, driver_draws = sim_success(policy, a.task, obj, seeds, a.sim_draws)
    sim, sim_driver = sim_draws[0], driver_draws[0]
    nominal_rate = 1.0 / spec.inference_period
    lat, inf = summary["observation_to_command_ms"], summary["inference_ms"]
    report = {
        "task": a.task, "policy": policy, "kind": spec.kind, "trials": len(seeds), "seeds": seeds,
        "mode": "composed" if a.composed else "processes", "object_source": a.object_source,
        "load_average_before": load0, "load_average_after": os.getloadavg(),
        "deploy_success": float(deploy.mean()) if len(deploy) else None,
        "sim_success_same_spawns": float(sim.mean()),
        "sim_success_through_driver_path": float(sim_driver.mean()),
        "paired_test_vs_sim_through_driver_path": paired_test(deploy, sim_driver),
        "sim_draws": len(sim_draws),
        "sim_success_mean_over_draws": float(sim_draws.mean()),
        "sim_success_per_draw": sim_draws.mean(axis=1).tolist(),
        "sim_success_through_driver_path_mean_over_draws": float(driver_draws.mean()),
        "sim_success_through_driver_path_per_draw": driver_draws.mean(axis=1).tolist(),
        "disagreements": [s for s, d, m in zip(seeds, deploy, sim, strict=True) if d != m],
        "paired_test": paired_test(deploy, sim),
        "observation_to_command_ms": lat, "inference_ms": inf,
        "policy_rate_hz": summary["policy_rate_hz"], "nominal_policy_rate_hz": nominal_rate,
        "command_rate_hz": summary["command_rate_hz"],
        "cpu_percent_of_one_core": summary.get("cpu_percent_of_one_core"),
    }
    (out / "deploy_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n== deploy benchmark: {a.task}, {policy} ({spec.kind}), {len(seeds)} trials, {report['mode']}, "
          f"object from {a.object_source}; load average {load0[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    print(f"success: deploy {100 * report['deploy_success']:.0f}%, sim on the same spawns "
          f"{100 * report['sim_success_same_spawns']:.0f}%, disagree on seeds {report['disagreements']} "
          f"({_paired_text(report['paired_test'])})")
    print(f"sim through the driver's command path (ramp, step/velocity caps, limit margins): "
          f"{100 * report['sim_success_through_driver_path']:.0f}% "
          f"({_paired_text(report['paired_test_vs_sim_through_driver_path'])})")
    if len(sim_draws) > 1:
        print(f"sim over {len(sim_draws)} sampler draws per spawn (the paired figures above are draw 0): "
              f"{100 * sim_draws.mean():.1f}% (draws {_percents(sim_draws)}), through the driver's path "
              f"{100 * driver_draws.mean():.1f}% (draws {_percents(driver_draws)}); deploy - sim "
              f"{100 * (deploy.mean() - driver_draws.mean()):+.1f} points")
    print(f"observation->command latency: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms "
          f"(inference p50 {inf['p50']:.1f} ms, p99 {inf['p99']:.1f} ms)")
    print(f"policy rate {summary['policy_rate_hz']:.2f} Hz of {nominal_rate:.1f} Hz nominal "
          f"({100 * summary['policy_rate_hz'] / nominal_rate:.0f}%); "
          f"commands {summary['command_rate_hz']:.2f} Hz")
    print("CPU % of one core: " + ", ".join(f"{k} {v:.0f}" for k, v in (report["cpu_percent_of_one_core"]
                                                                          or {}).items()))
    print(f"report: {out / 'deploy_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
