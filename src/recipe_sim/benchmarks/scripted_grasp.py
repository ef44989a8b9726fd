"""What a scripted grasp-and-reach achieves under domain randomization: the ceiling a policy can expect.

For each object and grasp of config/grasps.yaml, every env runs the closed-loop grasp_reach expert of
``recipe_sim.experts`` with that grasp through the real env (pre-grasp, reach, close, carry to the goal,
hold; re-grasp after a slip). Success is the task's own detector. The sweep repeats this with the arm/hand
action noise of the profile (Table IV, or ``--randomization FILE``) set to several standard
deviations, everything else as in the profile, which shows how much of the grasp the action noise
alone destroys. The basin (``--shift``) shows how far off the object may be when the hand closes and
still be grasped: the object is moved by the shift at the moment each hand starts to close (the arm pose
is latched then, so the expert does not follow it).

    ./dev bench scripted_grasp                                  # can_medium, noise 0 / 0.02 / 0.05 / 0.1
    ./dev bench scripted_grasp --objects can_medium bottle cuboid_tall --noise 0 0.1 --episodes 64
    ./dev bench scripted_grasp --grasps thumb_opposed wrap \
        --randomization config/randomization_low_noise.yaml

Envs whose object was out of the grasp's reach at the start (IK misses by > 5 mm at the grasp's
orientation) count as failures and are reported as "no plan".
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from recipe_sim.experts import GraspReachExpert
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.tasks.grasps import SideGrasp, load_grasps
from recipe_sim.vec_env import RecipeVecEnv

TOTAL = 60  # policy steps per episode: the expert carries the object to the goal within about 35


def run(obj: str, noise: float | None, episodes: int, seed: int, grasp: SideGrasp | None = None,
        randomization: Path | None = None) -> dict[str, float]:
    """Success / failure / no-plan shares of ``episodes`` scripted episodes (noise None: no randomization).

    ``randomization``: the profile whose action noise the sweep replaces (default: Table IV).
    """
    if noise is None:
        rand = RandomizationConfig.disabled()
    else:
        base = RandomizationConfig.load(randomization)
        rand = replace(base, action_noise=replace(base.action_noise, enabled=noise > 0, std=max(noise, 1e-9)))
    env = RecipeVecEnv("grasp_reach", episodes, objects=[obj], seed=seed, randomization=rand)
    try:
        env.reset()
        expert = GraspReachExpert(env, grasp)
        expert.joint_targets()  # the first targets tell which envs have a grasp pose
        has_plan = expert.has_plan
        succ, fail = _first_episodes(env, expert)
        return {
            "success": float(np.mean(succ)),
            "failure": float(np.mean(fail)),
            "no_plan": float(np.mean(~has_plan)),
        }
    finally:
        env.close()


def _first_episodes(env: RecipeVecEnv, expert: GraspReachExpert, on_step: Any = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Run TOTAL steps; (success, failure) of each env's first episode (later ones are ignored)."""
    first: dict[int, tuple[bool, bool]] = {}
    for _ in range(TOTAL):
        action = expert()
        if on_step is not None:
            on_step()
        _, _, dones, extras = env.step(action)
        log = extras["log"]
        for j, i in enumerate(np.flatnonzero(dones.numpy())):
            first.setdefault(int(i), (bool(log["/episode/success"][j]), bool(log["/episode/failure"][j])))
    # Episodes still running after TOTAL steps: success if the detector has fired (terminate_on_success
    # may be off), never a failure.
    ever = env._ep_success.copy()
    n = env.num_envs
    succ = np.array([first[i][0] if i in first else bool(ever[i]) for i in range(n)])
    # Failure = the object was lost before any success (a drop after the hold is still a success).
    fail = np.array([first[i][1] and not succ[i] if i in first else False for i in range(n)])
    return succ, fail


def _shift_closing(env: RecipeVecEnv, expert: GraspReachExpert, moved: np.ndarray, dx: float,
                   dy: np.ndarray) -> None:
    """Move the object of every env whose hand has just started to close (once per env)."""
    now = np.flatnonzero((expert.phase == expert.PHASES.index("close")) & ~moved)
    if now.size:
        oa = env.index.object_qpos_adr
        pose = env.physics.qpos[now, oa : oa + 7].copy()
        pose[:, 0] += dx
        pose[:, 1] += dy[now]
        env.teleport(now, object_pose=pose, hold_targets=False)
        moved[now] = True


def basin(obj: str, shift: float, episodes: int, seed: int,
          grasp: SideGrasp | None = None) -> dict[str, float]:
    """Success without randomization when the object is moved ``shift`` m as the hand starts to close.

    The width of this basin is how much error (perception, tracking, action noise) the grasp tolerates.
    Returns success among envs with a plan, per displacement: x (forward) and y (+ = toward the palm).
    """
    out: dict[str, float] = {}
    off = RandomizationConfig.disabled()
    env = RecipeVecEnv("grasp_reach", episodes, objects=[obj], seed=seed, randomization=off)
    try:
        moves = (("0", 0, 0), ("+x", shift, 0), ("-x", -shift, 0), ("+y", 0, shift), ("-y", 0, -shift))
        for label, dx, dy in moves:
            env.reset()
            expert = GraspReachExpert(env, grasp)
            expert.joint_targets()
            ok = expert.has_plan
            toward_palm = np.where(env.task.side.numpy() == 0, 1.0, -1.0)  # the left palm is on the +y side
            moved = np.zeros(episodes, dtype=bool)
            shift_when_closing = functools.partial(_shift_closing, env, expert, moved, dx, dy * toward_palm)
            succ, _ = _first_episodes(env, expert, shift_when_closing)
            out[label] = float(succ[ok].mean()) if ok.any() else float("nan")
    finally:
        env.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", nargs="+", default=["can_medium"])
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1],
                   help="action noise std values to sweep (Table IV: 0.1)")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    p.add_argument("--shift", type=float, default=0.01,
                   help="grasp basin: displace the object this much (m) as the hand closes (0: skip)")
    p.add_argument("--grasps", nargs="+", default=None,
                   help="grasp names of config/grasps.yaml to compare (default: its default grasp)")
    p.add_argument("--randomization", type=Path, default=None,
                   help="profile the noise sweep starts from (default: config/randomization.yaml)")
    a = p.parse_args(argv)
    catalog = load_grasps()
    grasps = {g: catalog.get(g) for g in a.grasps or [catalog.default]}  # unknown names fail here
    profile = "Table IV" if a.randomization is None else a.randomization.stem
    rows = []
    print(f"{'object':12s} {'grasp':14s} {'randomization':44s} success failure no-plan")
    for obj in a.objects:
        for g in grasps:
            for noise in [None, *a.noise]:
                t = time.monotonic()
                r = run(obj, noise, a.episodes, a.seed, grasps[g], a.randomization)
                label = "none" if noise is None else f"{profile}, action noise {noise:g}"
                print(f"{obj:12s} {g:14s} {label:44s} {r['success']:7.2f} {r['failure']:7.2f} "
                      f"{r['no_plan']:7.2f}   ({time.monotonic() - t:.1f} s)", flush=True)
                rows.append({"object": obj, "grasp": g, "action_noise": noise, **r})
    basins: dict[str, dict[str, dict[str, float]]] = {}
    if a.shift > 0:
        print(f"\ngrasp basin, no randomization: success of planned episodes with the object moved "
              f"{a.shift:g} m as the hand starts to close (x forward, +y toward the palm)")
        for obj in a.objects:
            for g in grasps:
                basins.setdefault(obj, {})[g] = b = basin(obj, a.shift, a.episodes, a.seed, grasps[g])
                cells = "  ".join(f"{k:>2s} {v:4.2f}" for k, v in b.items())
                print(f"{obj:12s} {g:14s} {cells}", flush=True)
    if a.out is not None:
        data = {"episodes": a.episodes, "seed": a.seed, "randomization": profile, "rows": rows,
                "shift": a.shift, "basin": basins}
        a.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
