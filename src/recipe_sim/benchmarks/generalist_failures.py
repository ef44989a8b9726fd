"""Where a generalist fails and its specialist does not, on the same episodes: first contact and approach.

Runs a deployable policy (``load_policy`` ref, through ``eval_generalist``'s runtime) and a reference policy
(default: the first specialist it was distilled from) on the same seeded episodes, and for every episode the
first one fails and the reference succeeds prints: the step the object first tilts past ``--tilt-deg``, the
robot bodies touching the object at its first contact, the closer palm's distance to the object there,
and how far the commanded joint targets trail the reference's (the lag, in steps, that best aligns the
first policy's hand commands with the reference's over the approach). The summary line compares the
palm-to-object distance at first contact over all such episodes.

    ./dev bench generalist_failures --policy grasp_reach --episodes 64 --seed 4242             # nominal
    ./dev bench generalist_failures --policy runs/generalist/gr --condition randomized --episodes 128

Writes ``generalist_failures.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

APPROACH_STEPS = 12  # the reach and hand closure of grasp_reach happen in the first 1.2 s


class _Recorder:
    """Per step and env: object position and tilt, palm positions, applied targets, bodies touching it."""

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps
        self.rows: list[dict[str, Any]] = []

    def __call__(self, env: Any) -> None:
        import mujoco

        if len(self.rows) >= self.max_steps:
            return
        ph, idx = env.physics, env.index
        oa = idx.object_qpos_adr
        q = ph.qpos
        _, x, y, _ = q[:, oa + 3 : oa + 7].T
        contacts = []
        for i in range(env.num_envs):
            m = ph.models[i]
            d = ph.scratch_data(i)
            mujoco.mj_forward(m, d)
            names = set()
            for c in d.contact[: d.ncon]:
                b1, b2 = int(m.geom_bodyid[c.geom1]), int(m.geom_bodyid[c.geom2])
                if idx.object_body in (b1, b2):
                    other = b2 if b1 == idx.object_body else b1
                    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, other) or ""
                    if other != 0 and "table" not in name:
                        names.add(name)
            contacts.append(sorted(names))
        self.rows.append(
            {
                "pos": q[:, oa : oa + 3].copy(),
                "tilt": np.degrees(np.arccos(np.clip(1 - 2 * (x * x + y * y), -1.0, 1.0))),
                "palms": ph.palms().copy(),
                "ctrl": env.applied_ctrl[:, idx.actuator_ids].copy(),
                "contacts": contacts,
            }
        )


def _run(policy: Any, task: str, obj: str, rand: Any, episodes: int, seed: int, steps: int) -> tuple:
    from recipe_policy.config import load_runtime_config
    from recipe_sim.distill.eval_generalist import evaluate_policy_on_object

    rec = _Recorder(steps)
    batch, _ = evaluate_policy_on_object(
        policy, task, obj, rand, episodes, seed, load_runtime_config(), 0.05, threads=1, on_step=rec
    )
    return batch.success.reshape(-1), rec.rows


def _first_contact(rows: list[dict[str, Any]], i: int) -> tuple[int | None, list[str], float]:
    """Step, bodies and closer-palm distance (m) at the first step with anything touching the object."""
    for t, r in enumerate(rows):
        if r["contacts"][i]:
            d = np.linalg.norm(r["palms"][i] - r["pos"][i][None], axis=-1).min()
            return t, r["contacts"][i], float(d)
    return None, [], float("nan")


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int = 3) -> int:
    """The shift k (steps) minimising |a[t] - b[t - k]|: how far a's commands trail b's."""
    errs = {k: float(np.abs(a[k:] - b[: len(b) - k]).mean()) for k in range(0, max_lag + 1)}
    return min(errs, key=errs.get)


def main(argv: list[str] | None = None) -> int:
    import torch

    from recipe_common.checkpoint_io import write_json
    from recipe_common.paths import config_path
    from recipe_policy.loading import load_policy
    from recipe_sim.distill.eval_generalist import DEFAULT_RANDOMIZATION, specialists_of
    from recipe_sim.ppo.evaluation import condition_randomization

    p = argparse.ArgumentParser(prog="generalist_failures", description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", required=True, help="the policy to examine (load_policy ref)")
    p.add_argument("--reference", default=None, help="the policy it should match (default: its specialist)")
    p.add_argument("--object", default=None, help="object (default: the policy's first)")
    p.add_argument("--condition", default="nominal", choices=["nominal", "randomized"])
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--inference-steps", type=int, default=2)
    p.add_argument("--initial-noise-scale", type=float, default=None,
                   help="the sampler starts from S x N(0, I) (default: the profile's)")
    p.add_argument("--out", type=Path, default=Path("runs/bench/generalist_failures"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    policy = load_policy(a.policy, inference_steps=a.inference_steps,
                         initial_noise_scale=a.initial_noise_scale)
    ref_name = a.reference or (specialists_of(policy) or [None])[0]
    if ref_name is None:
        print("generalist_failures: error: name --reference (no specialist recorded)", file=sys.stderr)
        return 2
    reference = load_policy(ref_name)
    obj = a.object or policy.spec.objects[0]
    # randomized = the specialists' training profile (low noise), as eval_generalist's default
    rand = condition_randomization(a.condition, path=config_path(DEFAULT_RANDOMIZATION))
    steps = APPROACH_STEPS + 8
    ok, rows = _run(policy, policy.spec.task, obj, rand, a.episodes, a.seed, steps)
    ok_ref, rows_ref = _run(reference, policy.spec.task, obj, rand, a.episodes, a.seed, steps)
    print(f"{a.condition}, {obj}, {a.episodes} episodes, seed {a.seed}: {a.policy} {100 * ok.mean():.1f}%, "
          f"{ref_name} {100 * ok_ref.mean():.1f}%")
    out: list[dict[str, Any]] = []
    for i in np.flatnonzero(~ok & ok_ref):
        t, bodies, dist = _first_contact(rows, i)
        t_ref, bodies_ref, dist_ref = _first_contact(rows_ref, i)
        tilt = np.array([r["tilt"][i] for r in rows])
        tipped = np.flatnonzero(tilt > 30.0)
        hand = np.stack([r["ctrl"][i, 14:] for r in rows[:APPROACH_STEPS]])
        hand_ref = np.stack([r["ctrl"][i, 14:] for r in rows_ref[:APPROACH_STEPS]])
        row = {
            "episode": int(i),
            "tilt_over_30deg_step": int(tipped[0]) if tipped.size else None,
            "first_contact": {"step": t, "bodies": bodies, "palm_distance_m": dist},
            "reference_first_contact": {"step": t_ref, "bodies": bodies_ref, "palm_distance_m": dist_ref},
            "hand_command_lag_steps": _lag(hand, hand_ref),
        }
        out.append(row)
        print(f"  episode {i:3d}: tilts past 30 deg at step {row['tilt_over_30deg_step']}; first contact "
              f"step {t} palm {100 * dist:.1f} cm {bodies}; reference step {t_ref} palm "
              f"{100 * dist_ref:.1f} cm {bodies_ref}; hand commands trail by "
              f"{row['hand_command_lag_steps']} step(s)")
    if out:
        d = np.array([r["first_contact"]["palm_distance_m"] for r in out])
        d_ref = np.array([r["reference_first_contact"]["palm_distance_m"] for r in out])
        print(f"palm-to-object distance at first contact, median over these episodes: "
              f"{100 * np.nanmedian(d):.1f} cm vs the reference's {100 * np.nanmedian(d_ref):.1f} cm")
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "generalist_failures.json", {
        "policy": a.policy, "reference": ref_name, "object": obj, "condition": a.condition,
        "episodes": a.episodes, "seed": a.seed, "success": float(ok.mean()),
        "reference_success": float(ok_ref.mean()), "failures": out,
    })
    print(f"wrote {a.out / 'generalist_failures.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
