"""box_lift: success against the spawn yaw, split at each box's peak-width yaw, and how often the box turns.

Why: between two flat palms a box settles where its width along the squeeze is least. That width,
``hx |sin yaw| + hy |cos yaw|``, peaks at ``atan(hx / hy)`` (0.49 rad for the wide box), inside the spawn's
+-0.75 rad, so a box spawned beyond its peak is turned towards a quarter turn instead of squared, and the
palms end up on its +-x faces near one end (counted since 2026-12-05, when each hand's sticker half became
the side facing it; docs/specialists.md, box_lift). This prints, per box, the
success within and beyond the peak and the share of episodes whose box turned by more than 45 degrees,
for the box expert or a checkpoint (deterministic actions), episodes from the ready pose. At each success it
also scans MuJoCo's contact list: the share of successes with both hands touching the box, and with the table
still touching it (a tipped-up box). The failures are checked the other way (``failure_kinds``): each failed
episode is put in the first kind it fits, "held": lifted by lift_height, clear of the table and touched by
both hands for hold_steps steps (a lift by contacts that the detector refused), "not_lifted": never
lift_height up, "tipped": lifted only with an end still on the table, "brief": lifted clear, but with both
hands on it for fewer than hold_steps steps. Until 2026-12-05 the detector asked for fingertips on the
stickers and this found 16 "held" failures in 384 episodes of the committed clone; it now reads the hands'
contacts (the model's contact sensors), so "held" should be 0 and the contact scan here checks the sensors.

    ./dev bench box_lift_turns                                             # the expert, low-noise profile
    ./dev bench box_lift_turns --checkpoint runs/box_lift/clone/model_0.pt --episodes 128

Writes ``box_lift_turns.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from recipe_sim.experts.box_lift import peak_width_yaw


def turned(yaw_start: np.ndarray, yaw_end: np.ndarray) -> np.ndarray:
    """(N,) bool: the box turned by more than 45 degrees, modulo a half turn (a box looks the same then)."""
    d = np.asarray(yaw_end, dtype=np.float64) - np.asarray(yaw_start, dtype=np.float64)
    return np.abs((d + np.pi / 2) % np.pi - np.pi / 2) > np.pi / 4


def split(success: np.ndarray, yaw_start: np.ndarray, yaw_end: np.ndarray, peak: float) -> dict[str, Any]:
    """Success and turn shares of the episodes within and beyond the peak yaw."""
    beyond = np.abs(yaw_start) > peak
    turns = turned(yaw_start, yaw_end)
    out: dict[str, Any] = {"episodes": int(success.size), "success": float(np.mean(success)),
                           "peak_yaw": peak}
    for key, m in (("within_peak", ~beyond), ("beyond_peak", beyond)):
        n = int(m.sum())
        out[key] = {"episodes": n, "success": float(success[m].mean()) if n else None,
                    "turned": float(turns[m].mean()) if n else None}
    return out


FAILURE_KINDS = ("held", "not_lifted", "tipped", "brief")


def longest_run(mask: np.ndarray) -> np.ndarray:
    """(N,) the longest run of consecutive True steps in each column of a (T, N) bool array."""
    m = np.asarray(mask, dtype=bool)
    best = np.zeros(m.shape[1], dtype=int)
    run = np.zeros(m.shape[1], dtype=int)
    for row in m:
        run = np.where(row, run + 1, 0)
        best = np.maximum(best, run)
    return best


def failure_kinds(success: np.ndarray, lifted: np.ndarray, clear: np.ndarray, both_touching: np.ndarray,
                  hold_steps: int) -> dict[str, int]:
    """Count the failed episodes by what happened to the box (module docstring); (T, N) bool per step."""
    lifted, clear = np.asarray(lifted, dtype=bool), np.asarray(clear, dtype=bool)
    both_touching = np.asarray(both_touching, dtype=bool)
    for name, a in (("clear", clear), ("both_touching", both_touching)):
        if a.shape != lifted.shape:
            raise ValueError(f"{name} has shape {a.shape}, expected lifted's {lifted.shape} (T, N)")
    failed = ~np.asarray(success, dtype=bool)
    held = longest_run(lifted & clear & both_touching) >= hold_steps
    ever_up, ever_clear = lifted.any(axis=0), (lifted & clear).any(axis=0)
    kind = np.select([held, ~ever_up, ~ever_clear], [0, 1, 2], default=3)
    return {k: int(np.sum(failed & (kind == i))) for i, k in enumerate(FAILURE_KINDS)}


def touching(model: Any, data: Any, index: Any) -> set[str]:
    """Who touches the object in a state whose contacts are computed.

    "left" / "right" (that hand's collision geoms, ``ModelIndex.hand_geoms``), "table", or a geom's name.
    """
    import mujoco

    from recipe_common import robot_spec

    per_side = np.split(np.asarray(index.hand_geoms), len(robot_spec.SIDES))
    party = {int(g): side for side, geoms in zip(robot_spec.SIDES, per_side, strict=True) for g in geoms}
    party[int(index.table_geom)] = "table"
    out = set()
    for c in data.contact[: data.ncon]:
        if index.object_geom in (c.geom1, c.geom2):
            other = int(c.geom2 if c.geom1 == index.object_geom else c.geom1)
            name = party.get(other) or mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, other)
            out.add(name or str(other))
    return out


def run_box(obj: str, episodes: int, seed: int, randomization: Path | None, checkpoint: Path | None,
            task_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One box's episodes (one env each) with the expert or the checkpoint's deterministic actor."""
    import mujoco
    import torch

    from recipe_sim import success as detector
    from recipe_sim.experts import make_expert
    from recipe_sim.experts.base import quat_yaw
    from recipe_sim.ppo.evaluation import deterministic_policy, load_actor
    from recipe_sim.randomization import RandomizationConfig
    from recipe_sim.vec_env import RecipeVecEnv

    rand = RandomizationConfig.load(randomization) if randomization else RandomizationConfig.disabled()
    env = RecipeVecEnv("box_lift", episodes, objects=[obj], seed=seed, randomization=rand,
                       task_overrides=task_overrides)
    try:
        obs = env.reset()
        oa = env.index.object_qpos_adr
        yaw0 = quat_yaw(env.physics.qpos[:, oa + 3 : oa + 7].copy())
        act = make_expert(env) if checkpoint is None else deterministic_policy(load_actor(checkpoint, env)[0])
        success = np.zeros(episodes, dtype=bool)
        task, sp = env.task, env.task.success_params
        hold = sp.hold_steps
        at_success: list[set[str]] = []
        lifted, clear, both_touching = [], [], []  # per step, (N,) each
        for _ in range(int(env.max_episode_length) - 1):  # stop before the env's own reset
            obs, _, _, _ = env.step(act(obs))
            new = (task.counter.numpy() >= hold) & ~success
            touch = []
            for i in range(episodes):
                m, d = env.physics.models[i], env.physics.scratch_data(i)
                mujoco.mj_collision(m, d)  # scratch_data ran the kinematics
                touch.append(touching(m, d, env.index))
            at_success += [touch[i] for i in np.flatnonzero(new)]
            success |= new
            pose = torch.as_tensor(env.physics.qpos[:, oa : oa + 7].copy(), dtype=torch.float32)
            lifted.append(detector.object_lifted(pose[:, :3], task.rest_z, sp.lift_height).numpy())
            clear.append(detector.lowest_point_clear(pose[:, :3], pose[:, 3:], task.half_extents,
                                                     task.table_top, sp.table_clearance).numpy())
            both_touching.append(np.array([{"left", "right"} <= t for t in touch]))
        yaw_end = quat_yaw(env.physics.qpos[:, oa + 3 : oa + 7].copy())
        size = env.physics.models[0].geom_size[env.index.object_geom]
        out = split(success, yaw0, yaw_end, peak_width_yaw(float(size[0]), float(size[1])))
        n = len(at_success)
        both = sum({"left", "right"} <= t for t in at_success)
        table = sum("table" in t for t in at_success)
        out["at_success"] = {"successes": n, "both_hands_touching": both / n if n else None,
                             "table_touching": table / n if n else None}
        out["failures"] = failure_kinds(success, np.array(lifted), np.array(clear), np.array(both_touching),
                                        hold)
        return out
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="box_lift checkpoint (default: the expert)")
    p.add_argument("--objects", nargs="+", default=["lift_box", "lift_box_small", "lift_box_wide"])
    p.add_argument("--episodes", type=int, default=64, help="episodes per box")
    p.add_argument("--seed", type=int, default=9100)
    p.add_argument("--randomization", type=Path, default=Path("config/randomization_low_noise.yaml"))
    p.add_argument("--out", type=Path, default=Path("runs/bench/box_lift_turns"))
    a = p.parse_args(argv)
    report: dict[str, Any] = {"policy": str(a.checkpoint or "expert"), "seed": a.seed,
                              "randomization": str(a.randomization), "boxes": {}}
    overrides = None
    if a.checkpoint is not None:
        from recipe_sim.ppo.checkpoint import read_metadata
        from recipe_sim.ppo.envs import recorded_task_overrides

        overrides = recorded_task_overrides(read_metadata(a.checkpoint))
    for obj in a.objects:
        r = run_box(obj, a.episodes, a.seed, a.randomization, a.checkpoint, overrides)
        report["boxes"][obj] = r

        def pct(x: float | None) -> str:
            return "  -  " if x is None else f"{100 * x:5.1f}%"

        w, b = r["within_peak"], r["beyond_peak"]
        print(f"{obj:16s} peak {r['peak_yaw']:.2f} rad  success {pct(r['success'])}  "
              f"within: {pct(w['success'])} of {w['episodes']:3d} (turned {pct(w['turned'])})  "
              f"beyond: {pct(b['success'])} of {b['episodes']:3d} (turned {pct(b['turned'])})  "
              f"at success: both hands touching {pct(r['at_success']['both_hands_touching'])}, "
              f"table {pct(r['at_success']['table_touching'])}", flush=True)
        kinds = ", ".join(f"{k} {v}" for k, v in r["failures"].items())
        print(f"{'':16s} failures by kind: {kinds}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "box_lift_turns.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {a.out / 'box_lift_turns.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
