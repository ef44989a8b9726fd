"""Env throughput: env-policy-steps/s of RecipeVecEnv in a contact-rich grasp, and robosuite's GR1 as a peer.

Run from the workspace:  PYTHONPATH=src/recipe_sim python src/recipe_sim/benchmarks/bench_env.py

What is measured
* Ours: grasp_reach with the 3 x 17 cm bottle, every env holding it lifted 10 cm in a scripted side
  grasp (recipe_sim.tasks.scripted; 5-8 finger-object contacts per env, printed). One env-policy-step is
  one 10 Hz policy step including its 12 physics substeps, rewards, resets and observations.
  Configurations: 1 env and 64 envs, each without and with the 84x84 head depth image. Nominal physics
  (randomization disabled) so that every env keeps its grasp; randomization only adds per-step noise
  draws, which are a negligible part of the step.
* Peer: robosuite 1.5.2 ``Lift`` with ``GR1ArmsOnly`` at control_freq 10 (one env, random actions), in a
  separate venv cached under .cache/peer-venv (robosuite needs mujoco 3.3.0; this workspace runs 4.0).
* Figures are wall-clock. Other processes may share the 2 cores, so the load average is printed and,
  for our env, also the CPU-time figure: env-steps per CPU-second x cores used (min(threads, envs)),
  i.e. what the same work gives on dedicated cores (rollout's per-env work parallelizes with negligible
  serial overhead; one env runs on one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import torch

from recipe_common import robot_spec
from recipe_common.paths import workspace_dir
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.tasks.scripted import plan_side_grasp
from recipe_sim.vec_env import RecipeVecEnv

OBJECT = "bottle"
OBJECT_XY = (0.34, 0.10)  # inside grasp_reach's spawn region, nearer the left hand
PEER_REQUIREMENTS = ("robosuite==1.5.2", "mujoco==3.3.0")
PEER_SCRIPT = r"""
import json, sys, time
import numpy as np
import robosuite as suite
steps = int(sys.argv[1])
env = suite.make("Lift", robots="GR1ArmsOnly", control_freq=10, has_renderer=False,
                 has_offscreen_renderer=False, use_camera_obs=False)
env.reset()
low, high = env.action_spec
low, high = np.maximum(low, -1.0), np.minimum(high, 1.0)  # some GR1 action bounds are infinite
rng = np.random.default_rng(0)
for _ in range(5):
    env.step(rng.uniform(low, high))
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(steps):
    _, _, done, _ = env.step(rng.uniform(low, high))
    if done:
        env.reset()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"steps_per_s": steps / wall, "cpu_steps_per_s": steps / cpu,
                  "action_dim": int(low.shape[0]), "physics_dt": float(env.sim.model.opt.timestep),
                  "control_freq": 10}))
"""


def grasp_env(num_envs: int, depth: bool, num_threads: int) -> tuple[RecipeVecEnv, torch.Tensor]:
    """An env whose every world holds the bottle lifted in a side grasp, and the action that holds it."""
    env = RecipeVecEnv(
        "grasp_reach",
        num_envs,
        objects=[OBJECT],
        seed=0,
        randomization=RandomizationConfig.disabled(),
        depth_camera="head_depth" if depth else None,
        num_threads=num_threads,
        task_overrides={
            "spawn": {
                "x": [OBJECT_XY[0] - 0.005, OBJECT_XY[0] + 0.005],
                "y": [OBJECT_XY[1] - 0.005, OBJECT_XY[1] + 0.005],
            },
            "episode_length": 10_000,
            "terminate_on_success": False,
        },
    )
    spec = env.object_specs[0]
    obj = np.array([*OBJECT_XY, env.table_top + spec.resting_height + 0.001])
    plan = plan_side_grasp(env.physics.models[0], env.index, env.ready_q, obj, side="left")
    ids = np.arange(num_envs)
    env.teleport(
        ids, q=np.tile(plan.approach, (num_envs, 1)), object_pose=np.tile([*obj, 1, 0, 0, 0], (num_envs, 1))
    )

    def act(q: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(
            np.tile(robot_spec.joint_targets_to_action(q, env.hand), (num_envs, 1)), dtype=torch.float32
        )

    for k in range(1, 11):
        env.step(act(plan.approach + (plan.closed - plan.approach) * k / 10))
    for k in range(1, 11):
        env.step(act(plan.closed + (plan.lifted - plan.closed) * k / 10))
    hold = act(plan.lifted)
    for _ in range(5):
        env.step(hold)
    return env, hold


def hand_object_contacts(env: RecipeVecEnv) -> np.ndarray:
    """(N,) number of contacts between a hand and the object in each env's current state."""
    hands, obj = set(env.index.hand_geoms.tolist()), env.index.object_geom
    out = np.zeros(env.num_envs, dtype=int)
    for i in range(env.num_envs):
        d = env.physics.scratch_data(i)
        mujoco.mj_collision(env.physics.models[i], d)
        out[i] = sum(
            1
            for c in d.contact[: d.ncon]
            if obj in (c.geom1, c.geom2) and (c.geom1 in hands or c.geom2 in hands)
        )
    return out


def time_steps(env: RecipeVecEnv, action: torch.Tensor, steps: int, cores: int) -> dict[str, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    dones = 0
    for _ in range(steps):
        _, _, d, _ = env.step(action)
        dones += int(d.sum())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = env.num_envs * steps
    return {"env_steps_per_s": n / wall, "cpu_env_steps_per_s": cores * n / cpu, "episodes_ended": dones}


def time_python_threads(env: RecipeVecEnv, steps: int, threads: int) -> float:
    """The alternative to rollout: Python threads calling ``mj_step`` on per-env MjData (same state, same
    controls). Returns env-policy-steps/s of the physics alone."""
    ph = env.physics
    datas = []
    for i in range(env.num_envs):
        d = mujoco.MjData(ph.models[i])
        mujoco.mj_setState(ph.models[i], d, ph.state[i], mujoco.mjtState.mjSTATE_FULLPHYSICS)
        d.ctrl[:] = ph.ctrl[i]
        datas.append(d)

    def work(lo: int, hi: int) -> None:
        for _ in range(steps):
            for i in range(lo, hi):
                mujoco.mj_step(ph.models[i], datas[i], nstep=env.substeps)

    bounds = np.linspace(0, env.num_envs, threads + 1).astype(int)
    pool = [threading.Thread(target=work, args=(bounds[k], bounds[k + 1])) for k in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return env.num_envs * steps / (time.perf_counter() - t0)


def time_rollout_physics(env: RecipeVecEnv, steps: int) -> float:
    """Physics alone through sim_batch (mujoco.rollout), for the comparison with Python threads."""
    t0 = time.perf_counter()
    for _ in range(steps):
        env.physics.step(env.substeps)
    return env.num_envs * steps / (time.perf_counter() - t0)


def time_depth_only(env: RecipeVecEnv, repeats: int) -> float:
    """Depth frames/s of the renderer alone (84x84, one frame per env)."""
    assert env.depth is not None
    out = np.zeros((env.num_envs, 1, env.depth.height, env.depth.width), dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(repeats):
        env.depth.render(out=out)
    return env.num_envs * repeats / (time.perf_counter() - t0)


def peer_venv(workspace: Path) -> Path:
    """Create (once) the robosuite venv under .cache/peer-venv; returns its python."""
    venv = workspace / ".cache" / "peer-venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.is_file() and python.is_file():
        return python
    subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True, text=True
    )
    cmd = [str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS]
    constraints = workspace / "requirements" / "constraints.txt"
    if constraints.is_file():
        cmd += ["-c", str(constraints)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(PEER_REQUIREMENTS)} failed: {res.stderr.strip()[-800:]}")
    marker.write_text(" ".join(PEER_REQUIREMENTS) + "\n")
    return python


def run_peer(workspace: Path, steps: int) -> dict[str, float]:
    python = peer_venv(workspace)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUJOCO_GL")}
    env["MUJOCO_GL"] = "egl"
    res = subprocess.run(
        [str(python), "-c", PEER_SCRIPT, str(steps)], capture_output=True, text=True, timeout=900, env=env
    )
    if res.returncode != 0:
        raise RuntimeError(f"robosuite run failed: {res.stderr.strip()[-800:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--steps", type=int, default=30, help="timed policy steps for 64 envs (1 env: 10x as many)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peer-steps", type=int, default=100)
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = p.parse_args(argv)
    cores = a.threads
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()}, threads: {a.threads})")
    results: dict[str, dict] = {}
    for n_envs in (1, 64):
        for depth in (False, True):
            env, hold = grasp_env(n_envs, depth, a.threads)
            contacts = hand_object_contacts(env)
            steps = a.steps * (10 if n_envs == 1 else 1) // (4 if depth and n_envs == 64 else 1)
            r = time_steps(env, hold, max(steps, 5), min(cores, n_envs))
            r["contacts_mean"] = float(contacts.mean())
            r["envs_in_contact"] = float((contacts >= 3).mean())
            if n_envs == 64 and not depth:
                r["physics_python_threads"] = time_python_threads(env, max(a.steps // 3, 3), a.threads)
                r["physics_rollout"] = time_rollout_physics(env, max(a.steps // 3, 3))
                print(
                    f"physics only, 64 envs: rollout {r['physics_rollout']:.0f} vs {a.threads} Python threads"
                    f" over mj_step {r['physics_python_threads']:.0f} env-policy-steps/s"
                )
            if depth:
                r["depth_only_frames_per_s"] = time_depth_only(env, 3 if n_envs == 64 else 100)
            key = f"{n_envs}env{'_depth84' if depth else ''}"
            results[key] = r
            print(
                f"{key:14s} {r['env_steps_per_s']:8.0f} env-policy-steps/s wall | "
                f"{r['cpu_env_steps_per_s']:8.0f} on {min(cores, n_envs)} dedicated core(s) (CPU time) | "
                f"hand-object contacts/env {r['contacts_mean']:.1f} "
                f"({100 * r['envs_in_contact']:.0f}% envs >= 3)"
                + (f" | depth renderer alone {r['depth_only_frames_per_s']:.0f} frames/s" if depth else "")
            )
            env.close()
    if a.skip_peer:
        print("peer: skipped (--skip-peer)")
    else:
        try:
            peer = run_peer(workspace_dir(), a.peer_steps)
            results["robosuite_gr1_lift"] = peer
            ours = results["64env"]["env_steps_per_s"]
            print(
                f"robosuite 1.5.2 GR1ArmsOnly Lift (1 env, physics dt {peer['physics_dt']}): "
                f"{peer['steps_per_s']:.1f} env-policy-steps/s wall "
                f"({peer['cpu_steps_per_s']:.1f} per CPU-second)"
            )
            print(
                f"ratio ours/robosuite: 64 envs {ours / peer['steps_per_s']:.1f}x, "
                f"1 env {results['1env']['env_steps_per_s'] / peer['steps_per_s']:.1f}x"
            )
        except (RuntimeError, OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
            print(f"peer: robosuite could not be run: {exc}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if a.json is not None:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
