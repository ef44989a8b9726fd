"""Success of each task's closed-loop expert (``recipe_sim.experts``) per object, under several profiles.

The ceiling a demo-initialised specialist starts from, and what the experts give as demonstrators for
distillation. Every object of the task's grouping is run in its own env (seed ``--seed + k``), episodes
from the ready pose, the task's own success detector; a finished env's later episodes are not counted.
Profiles: ``nominal`` (no randomization), ``low_noise`` (config/randomization_low_noise.yaml) and
``degrees`` (config/randomization_degrees.yaml: Table IV with its noises read as degrees); ``--profiles``
may add ``table_iv`` (config/randomization.yaml as published).

    ./dev bench expert_success                                      # every task, 64 episodes per object
    ./dev bench expert_success --tasks handover --episodes 256
    ./dev bench expert_success --tasks grasp_reach --objects can_small ball_small --profiles nominal degrees
    ./dev bench expert_success --tasks handover --expert memoryless=true     # an expert's options

Writes ``expert_success.json`` and ``expert_success.png`` (bars per object and profile) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PROFILE_FILES = {
    "nominal": None,
    "low_noise": "randomization_low_noise.yaml",
    "degrees": "randomization_degrees.yaml",
    "table_iv": "randomization.yaml",
}


def task_objects(task: str) -> list[str]:
    """Every object of the task's own grouping (grasp_reach: the ten tabletop objects)."""
    from recipe_sim.objects import load_catalog
    from recipe_sim.ppo.envs import task_kind_and_group

    _, group = task_kind_and_group(task)
    return [o for g in load_catalog().group(group) for o in g]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["grasp_reach", "box_lift", "handover"])
    p.add_argument("--objects", nargs="+", default=None, help="objects (default: each task's grouping)")
    p.add_argument("--profiles", nargs="+", default=["nominal", "low_noise", "degrees"],
                   choices=sorted(PROFILE_FILES))
    p.add_argument("--episodes", type=int, default=64, help="episodes per object and profile")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--seed", type=int, default=2000)
    p.add_argument("--expert", nargs="+", default=[], metavar="KEY=VALUE",
                   help="options of the experts (make_expert keywords, YAML values), e.g. memoryless=true")
    p.add_argument("--out", type=Path, default=Path("runs/bench/expert_success"))
    a = p.parse_args(argv)
    if a.episodes < 1 or a.num_envs < 1:
        p.error("--episodes and --num-envs must be >= 1")
    from recipe_common.config import ConfigError, key_values

    try:
        options = key_values(a.expert, "--expert")
    except ConfigError as exc:
        p.error(str(exc))

    from recipe_common.paths import config_path
    from recipe_sim.experts import make_expert
    from recipe_sim.ppo.evaluation import evaluate_objects, plot_success, summarize
    from recipe_sim.randomization import RandomizationConfig

    report: dict = {"episodes_per_object": a.episodes, "seed": a.seed, "expert_options": options, "tasks": {}}
    a.out.mkdir(parents=True, exist_ok=True)
    for task in a.tasks:
        objects = a.objects or task_objects(task)
        results = {}
        for profile in a.profiles:
            f = PROFILE_FILES[profile]
            rand = RandomizationConfig.disabled() if f is None else RandomizationConfig.load(config_path(f))
            t = time.monotonic()

            def show(name: str, batch: Any, profile: str = profile, task: str = task) -> None:
                print(f"{task:12s} {profile:10s} {name:20s} {100 * batch.success_rate:5.1f}% "
                      f"of {batch.success.size}", flush=True)

            results[profile] = evaluate_objects(task, objects, rand, a.episodes, a.num_envs, a.seed,
                                                lambda env: make_expert(env, **options), on_object=show)
            print(f"{task:12s} {profile:10s} {'(all)':20s} "
                  f"{100 * np.mean([b.success_rate for b in results[profile].values()]):5.1f}%  "
                  f"({time.monotonic() - t:.0f} s)", flush=True)
        summary = summarize(results)
        report["tasks"][task] = summary
        plot_success(summary, a.out / f"expert_success_{task}.png", f"{task}: closed-loop expert")
    (a.out / "expert_success.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out / 'expert_success.json'} and the PNGs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
