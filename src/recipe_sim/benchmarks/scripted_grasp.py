"""What a scripted grasp-and-reach achieves under domain randomization: the ceiling a policy can expect.

For each object, every env plans the scripted side grasp of ``recipe_sim.tasks.scripted`` from its reset
state (closer hand, ready orientation), then runs it open-loop through the real env: reach (10 steps),
close (6), carry to the goal (14), hold. Success is the task's own detector. The sweep repeats this with
the arm/hand action noise of Table IV set to several standard deviations, everything else as in
config/randomization.yaml, which shows how much of the grasp the action noise alone destroys.

    ./dev bench scripted_grasp                                  # can_medium, noise 0 / 0.02 / 0.05 / 0.1
    ./dev bench scripted_grasp --objects can_medium bottle cuboid_tall --noise 0 0.1 --episodes 64

Envs whose object is out of the side grasp's reach (IK misses by > 5 mm at the ready orientation) count
as failures and are reported as "no plan".
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from recipe_sim import robot_spec
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.tasks.scripted import GraspPlan, plan_side_grasp
from recipe_sim.vec_env import RecipeVecEnv

REACH, CLOSE, CARRY, TOTAL = 10, 6, 14, 60


def _plans(env: RecipeVecEnv) -> list[tuple[GraspPlan, GraspPlan] | None]:
    model, index = env.physics.models[0], env.index
    oa = index.object_qpos_adr
    pos = env.physics.qpos[:, oa : oa + 3].copy()
    out: list[tuple[GraspPlan, GraspPlan] | None] = []
    for i in range(env.num_envs):
        side = "left" if int(env.task.side[i]) == 0 else "right"
        try:
            grasp = plan_side_grasp(model, index, env.ready_q, pos[i], side=side, lift=0.0)
            goal = env.task.goal[i].numpy()
            at_goal = plan_side_grasp(model, index, env.ready_q, goal, side=side, lift=0.0)
        except ValueError:
            out.append(None)
            continue
        out.append((grasp, at_goal))
    return out


def _targets(env: RecipeVecEnv, plans: list[tuple[GraspPlan, GraspPlan] | None], k: int) -> np.ndarray:
    """(N, 26) joint targets of policy step k of the scripted episode."""
    n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
    out = np.tile(env.ready_q, (env.num_envs, 1))
    for i, plan in enumerate(plans):
        if plan is None:
            continue
        grasp, at_goal = plan
        carry = at_goal.approach.copy()
        carry[n_arm:] = grasp.closed[n_arm:]
        if k < REACH:
            out[i] = env.ready_q + (grasp.approach - env.ready_q) * (k + 1) / REACH
        elif k < REACH + CLOSE:
            out[i] = grasp.approach + (grasp.closed - grasp.approach) * (k - REACH + 1) / CLOSE
        elif k < REACH + CLOSE + CARRY:
            out[i] = grasp.closed + (carry - grasp.closed) * (k - REACH - CLOSE + 1) / CARRY
        else:
            out[i] = carry
    return out


def run(obj: str, noise: float | None, episodes: int, seed: int) -> dict[str, float]:
    """Success / failure / no-plan shares of ``episodes`` scripted episodes (noise None: no randomization)."""
    if noise is None:
        rand = RandomizationConfig.disabled()
    else:
        base = RandomizationConfig.load()
        rand = replace(base, action_noise=replace(base.action_noise, enabled=noise > 0, std=max(noise, 1e-9)))
    env = RecipeVecEnv("grasp_reach", episodes, objects=[obj], seed=seed, randomization=rand)
    try:
        env.reset()
        plans = _plans(env)
        first: dict[int, tuple[bool, bool]] = {}
        for k in range(TOTAL):
            q = _targets(env, plans, k)
            action = torch.as_tensor(robot_spec.joint_targets_to_action(q, env.hand), dtype=torch.float32)
            _, _, dones, extras = env.step(action)
            ids = np.flatnonzero(dones.numpy())
            log = extras["log"]
            for j, i in enumerate(ids):
                first.setdefault(int(i), (bool(log["/episode/success"][j]), bool(log["/episode/failure"][j])))
        # Episodes still running after TOTAL steps: success if the detector has fired (terminate_on_success
        # may be off), never a failure.
        ever = env._ep_success.copy()
        succ = [first[i][0] if i in first else bool(ever[i]) for i in range(episodes)]
        # Failure = the object was lost before any success (a drop after the hold is still a success).
        fail = [first[i][1] and not succ[i] if i in first else False for i in range(episodes)]
        return {
            "success": float(np.mean(succ)),
            "failure": float(np.mean(fail)),
            "no_plan": float(np.mean([p is None for p in plans])),
        }
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", nargs="+", default=["can_medium"])
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1],
                   help="action noise std values to sweep (Table IV: 0.1)")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    a = p.parse_args(argv)
    rows = []
    print(f"{'object':12s} {'randomization':34s} success failure no-plan")
    for obj in a.objects:
        for noise in [None, *a.noise]:
            t = time.monotonic()
            r = run(obj, noise, a.episodes, a.seed)
            label = "none" if noise is None else f"Table IV, action noise {noise:g}"
            print(f"{obj:12s} {label:34s} {r['success']:7.2f} {r['failure']:7.2f} {r['no_plan']:7.2f}"
                  f"   ({time.monotonic() - t:.1f} s)", flush=True)
            rows.append({"object": obj, "action_noise": noise, **r})
    if a.out is not None:
        a.out.write_text(json.dumps({"episodes": a.episodes, "seed": a.seed, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
