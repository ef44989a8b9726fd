"""Which domain-randomization item costs a policy the most: a leave-one-out ablation.

Runs a PPO checkpoint's deterministic actor (or, with ``--expert``, the scripted side grasp of
``recipe_sim.experts``) from the ready pose under a randomization profile, under no
randomization, and under the profile with each of its items switched off in turn. The gain from
switching an item off is what that item costs: the item a policy (or its demonstrator) should be made
robust to first, or the one to check on the real robot before trusting the profile's value.

    ./dev bench randomization_ablation --checkpoint runs/grasp_reach/<run>/model_1500.pt \\
        --randomization config/randomization_low_noise.yaml --episodes 256
    ./dev bench randomization_ablation --expert --object can_medium \\
        --randomization config/randomization_low_noise.yaml --episodes 256

Every condition uses the same seed. The camera items only change depth images, which neither a state
policy nor the script sees, so they are left out unless named with ``--items``. Prints a table with the
standard error of each rate (a gain below about two of them is noise) and writes ``ablation.json`` and
``ablation.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recipe_sim.randomization import CAMERA_ITEMS, RandomizationConfig

PROFILE, NONE = "profile", "none"


def ablation_profiles(
    base: RandomizationConfig, items: Sequence[str] | None = None
) -> dict[str, RandomizationConfig]:
    """The conditions: the profile, no randomization, and the profile without each item.

    ``items``: the items to switch off one at a time (default: every enabled non-camera item). Naming
    an unknown or already disabled item is an error, since its row would equal the profile's.
    """
    if items is None:
        items = [name for name in base.enabled_items() if name not in CAMERA_ITEMS]
    out = {PROFILE: base, NONE: RandomizationConfig.disabled()}
    for name in items:
        off = base.without(name)  # names the item when the profile has none of that name
        if off == base:
            raise ValueError(f"--items: {name} is already off in this profile; nothing to switch off")
        out[f"without {name}"] = off
    return out


def standard_error(rate: float, n: int) -> float:
    return math.sqrt(max(rate * (1.0 - rate), 0.0) / n) if n > 0 else math.nan


def ablation_table(rates: dict[str, tuple[float, int]]) -> list[dict[str, Any]]:
    """Rows sorted by gain (largest first) after the profile and no-randomization rows.

    ``rates``: condition -> (success rate, episodes). The gain is in percentage points over the profile.
    """
    if PROFILE not in rates:
        raise ValueError(f"the ablation needs the {PROFILE!r} condition as its reference")
    ref = rates[PROFILE][0]
    rows = [
        {
            "condition": cond,
            "success": rate,
            "episodes": n,
            "standard_error": standard_error(rate, n),
            "gain_points": 100.0 * (rate - ref),
        }
        for cond, (rate, n) in rates.items()
    ]
    head = [r for r in rows if r["condition"] in (PROFILE, NONE)]
    rest = sorted((r for r in rows if r["condition"] not in (PROFILE, NONE)), key=lambda r: -r["gain_points"])
    return head + rest


def plot_ablation(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["condition"] for r in rows][::-1]
    values = [100.0 * r["success"] for r in rows][::-1]
    errors = [100.0 * r["standard_error"] for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    colors = ["tab:gray" if lab in (PROFILE, NONE) else "tab:blue" for lab in labels]
    ax.barh(labels, values, xerr=errors, color=colors)
    ref = next(r["success"] for r in rows if r["condition"] == PROFILE)
    ax.axvline(100.0 * ref, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, 100)
    ax.set_xlabel("success rate (%), error bars: one standard error")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--checkpoint", type=Path, help="model_<it>.pt with its metadata.json")
    who.add_argument("--expert", action="store_true", help="ablate the scripted side grasp (grasp_reach)")
    p.add_argument("--object", default="can_medium", help="--expert: the object (default can_medium)")
    p.add_argument("--grasp", default=None,
                   help="--expert: a grasp of config/grasps.yaml (default: that file's default)")
    p.add_argument("--randomization", type=Path, default=None,
                   help="the profile (default config/randomization.yaml = paper Table IV)")
    p.add_argument("--items", nargs="+", default=None,
                   help="items to switch off one at a time (default: every enabled non-camera item)")
    p.add_argument("--episodes", type=int, default=128, help="episodes per object and condition")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    a = p.parse_args(argv)
    if a.episodes < 1 or a.num_envs < 1:
        p.error("--episodes and --num-envs must be >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    from recipe_sim.experts import make_expert
    from recipe_sim.ppo.checkpoint import CheckpointError, read_metadata
    from recipe_sim.ppo.envs import recorded_task_overrides
    from recipe_sim.ppo.evaluation import deterministic_policy, evaluate_objects, load_actor, objects_of

    torch.set_num_threads(a.threads)
    try:
        base = RandomizationConfig.load(a.randomization)
        profiles = ablation_profiles(base, a.items)
        if a.checkpoint is not None:
            meta = read_metadata(a.checkpoint)
            task, objects = meta["task"], objects_of(meta, None)
            overrides = recorded_task_overrides(meta)
            who = f"{a.checkpoint} (it {meta['iteration']})"
        else:
            task, objects, overrides = "grasp_reach", [a.object], None
            who = f"scripted expert, grasp {a.grasp or 'default'}"
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"randomization_ablation: error: {exc}", file=sys.stderr)
        return 1

    def policy_for(env: Any) -> Callable[[Any], Any]:
        if a.checkpoint is None:
            return make_expert(env, grasp=a.grasp)
        actor, _ = load_actor(a.checkpoint, env)
        return deterministic_policy(actor)

    rates: dict[str, tuple[float, int]] = {}
    profile_name = "Table IV" if a.randomization is None else a.randomization.stem
    print(f"{who} under {profile_name}: {len(profiles)} conditions x {len(objects)} object(s) x "
          f"{a.episodes} episodes", flush=True)
    for cond, rand in profiles.items():
        t = time.monotonic()
        batches = evaluate_objects(task, objects, rand, a.episodes, a.num_envs, a.seed, policy_for,
                                   task_overrides=overrides, threads=a.threads)
        wins = sum(int(b.success.sum()) for b in batches.values())
        total = sum(int(b.success.size) for b in batches.values())
        rates[cond] = (wins / total, total)
        print(f"  {cond:34s} {100 * wins / total:5.1f}%  ({time.monotonic() - t:.0f} s)", flush=True)
    rows = ablation_table(rates)
    print(f"\n{'condition':36s} success   s.e.  gain (points)")
    for r in rows:
        print(f"{r['condition']:36s} {100 * r['success']:6.1f}% {100 * r['standard_error']:5.1f}  "
              f"{r['gain_points']:+6.1f}")
    a.out.mkdir(parents=True, exist_ok=True)
    report = {
        "who": who,
        "task": task,
        "objects": objects,
        "randomization": "config/randomization.yaml" if a.randomization is None else str(a.randomization),
        "seed": a.seed,
        "episodes_per_object": a.episodes,
        "rows": rows,
    }
    (a.out / "ablation.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_ablation(rows, a.out / "ablation.png", f"{who}\nleave-one-out under {profile_name}")
    print(f"wrote {a.out / 'ablation.json'} and {a.out / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
