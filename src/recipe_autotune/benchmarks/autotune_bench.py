"""Benchmark: a default autotune at the paper-like budget on this machine (target: < 4 minutes on 2 cores).

"Paper-like budget" (the paper: K simulated environments each replaying the real robot's ~2000 policy
steps at 10 Hz, under 4 minutes): 7 training + 1 held-out calibration sequences x 25 s x 10 Hz = 2000
policy steps of real data, the training ones replayed by every candidate; K = 64 random candidates
(paper's Algorithm 1) + 128 least-squares refinement candidates, plus the motion design (a pool of
segments simulated on the manufacturer model), the untuned baseline, the held-out check, the
identifiability analysis and the overlay plots. "The real robot" is the SimTwin with the built-in hidden
overlay and 0.5 mrad encoder noise. Optionally also runs pure random search with the same candidate
budget for the comparison. identification_bench.py runs several hidden robots.

    python src/recipe_autotune/benchmarks/autotune_bench.py [--no-equal-budget-random] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from recipe_autotune.clearance import ClearanceChecker
from recipe_autotune.config import load_config
from recipe_autotune.design import design_calibration
from recipe_autotune.recording import Recording
from recipe_autotune.search import random_search
from recipe_autotune.synthetic import DEFAULT_HIDDEN_OVERLAY, record_on_twin
from recipe_autotune.tracking import SimEvaluator, manufacturer_params
from recipe_autotune.tuner import run_autotune

NOISE = 5e-4
TIME_LIMIT_S = 240.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-equal-budget-random", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="autotune_bench_"))
    config = load_config()
    cal, search = config.calibration, config.search

    t0, cpu0 = time.monotonic(), _cpu_seconds()
    free = config.space.free()
    base = config.space.locked_params(manufacturer_params(config.hand))
    design = design_calibration(
        config, free, base, args.seed, clearance=ClearanceChecker(config.hand, cal.clearance_margin_m)
    )
    t_design, cpu_design = time.monotonic() - t0, _cpu_seconds() - cpu0
    train = record_on_twin(
        design.train, config.hand, DEFAULT_HIDDEN_OVERLAY, cal.command_rate_hz, NOISE, args.seed
    )
    held = record_on_twin(
        design.heldout, config.hand, DEFAULT_HIDDEN_OVERLAY, cal.command_rate_hz, NOISE, args.seed + 1
    )
    real = Recording.combine(train, held)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(
        f"real data: {train.num_sequences} training + {held.num_sequences} held-out sequences x "
        f"{real.num_samples} samples = {real.num_sequences * real.num_samples} policy steps"
    )
    print(
        f"design: {design.pool} segments simulated in {t_design:.1f} s ({cpu_design:.1f} s CPU); "
        f"log det per parameter {design.chosen.log_det_per_parameter:.2f} vs "
        f"{design.unselected.log_det_per_parameter:.2f} without the criterion, condition number "
        f"{design.chosen.condition_number:.0f} vs {design.unselected.condition_number:.0f}"
    )
    print(
        f"space: {free.dim} free parameters ({len(config.space.locked)} locked), groups {config.space.groups}"
    )
    print(
        f"budget: K={search.population} random + {search.refinement_evaluations} {search.refiner} candidates"
    )

    t1, cpu1, load1 = time.monotonic(), _cpu_seconds(), os.getloadavg()[0]
    res = run_autotune(config, real, seed=args.seed, out_dir=out, design=design.criteria())
    elapsed, cpu = time.monotonic() - t1, _cpu_seconds() - cpu1
    threads = config.evaluation.threads
    elapsed, cpu = elapsed + t_design, cpu + cpu_design
    verdict = "PASS" if cpu / threads < TIME_LIMIT_S else "FAIL"
    print(
        f"autotune incl. design: {elapsed:.1f} s wall ({verdict} on CPU/{threads}: "
        f"limit {TIME_LIMIT_S:.0f}), "
        f"{res.sim_steps / 1e6:.2f}M physics steps simulated ({res.sim_steps / elapsed / 1e3:.0f}k steps/s), "
        f"search {res.search_sim_steps / 1e6:.2f}M"
    )
    # On a shared host the wall time says more about the neighbours than about autotune: the process CPU
    # time over the 2 rollout threads is what the run would take with both cores to itself.
    print(
        f"  CPU time {cpu:.1f} s = {cpu / threads:.1f} s on {threads} free cores; "
        f"load average {load1:.1f} -> {os.getloadavg()[0]:.1f} during the run"
    )
    print(f"MSE untuned       {res.untuned_mse:.3e} rad^2, held-out {res.heldout_untuned_mse:.3e}")
    print(
        f"MSE random search {res.random_search_mse:.3e} rad^2, held-out {res.heldout_random_search_mse:.3e}"
    )
    print(
        f"MSE refined       {res.best_mse:.3e} rad^2, held-out {res.heldout_mse:.3e} "
        f"(noise floor {NOISE**2:.1e})"
    )
    for warning in res.warnings:
        print(f"warning: {warning}")
    constrained = [f.name for f in res.fits if f.constrained]
    print(f"constrained by the data: {len(constrained)}/{len(res.fits)}: {', '.join(constrained)}")
    print(f"report: {res.report_path}")

    if not args.no_equal_budget_random:
        t2 = time.monotonic()
        train_idx = real.split()[0]
        with SimEvaluator(real, free, threads=config.evaluation.threads, base_params=base) as ev:
            pure = random_search(
                lambda u: ev.mse_unit(u, train_idx),
                free.dim,
                res.evaluations,
                np.random.default_rng(args.seed),
                search.batch_size,
            )
        print(
            f"MSE pure random search, same {res.evaluations} candidates: {pure.best_cost:.3e} rad^2 "
            f"({time.monotonic() - t2:.1f} s)"
        )


if __name__ == "__main__":
    main()
