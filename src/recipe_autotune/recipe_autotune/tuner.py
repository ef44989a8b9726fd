"""run_autotune: untuned baseline -> random search (paper) -> CMA-ES refinement -> overlay + report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import report as report_mod
from .config import AutotuneConfig
from .recording import Recording
from .search import STAGE_REFINE, SearchTrace, cma_refine, least_squares_refine, random_search
from .tracking import SimEvaluator

FeedbackFn = Callable[
    [str, int, int, float], None
]  # (stage, candidates_evaluated, candidates_total, best_mse)
OVERLAY_NAME = "autotune_overlay.yaml"


@dataclass
class AutotuneResult:
    success: bool
    message: str
    cancelled: bool
    untuned_mse: float
    random_search_mse: float
    best_mse: float
    best_values: dict[str, float]
    overlay_path: Path | None = None
    report_path: Path | None = None
    report_json_path: Path | None = None
    figures: list[Path] = field(default_factory=list)
    fits: list[report_mod.ParameterFit] = field(default_factory=list)
    evaluations: int = 0  # candidates evaluated by the two search stages
    sim_steps: int = 0  # physics steps of everything simulated (baseline, search, analysis)
    search_sim_steps: int = 0  # physics steps of the two search stages only
    policy_steps: int = 0
    elapsed_s: float = 0.0


def _never() -> bool:
    return False


def run_autotune(
    config: AutotuneConfig,
    real: Recording,
    groups: Sequence[str] | None = None,
    population: int = 0,
    seed: int = 0,
    feedback_cb: FeedbackFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    out_dir: str | Path | None = None,
    refinement_evaluations: int | None = None,
    true_values: dict[str, float] | None = None,
    make_plots: bool = True,
) -> AutotuneResult:
    """Fit the selected parameter groups to ``real`` and write the overlay YAML and the fit report.

    population 0 / refinement_evaluations None take the config values. ``true_values`` (parameter name ->
    value, known for synthetic data only) adds the per-parameter error to the report. On cancel nothing is
    written and the best values so far are returned with ``cancelled=True``.
    """
    t0 = time.monotonic()
    stop = should_stop or _never
    space = config.space.select(groups)
    k = int(population) or config.search.population
    n_refine = (
        config.search.refinement_evaluations
        if refinement_evaluations is None
        else int(refinement_evaluations)
    )
    total = k + n_refine
    if real.hand != config.hand:
        raise ValueError(f"recording is for the {real.hand!r} hand, config for {config.hand!r}")

    with SimEvaluator(
        real,
        space,
        threads=config.evaluation.threads,
        joints=config.evaluation.joints,
        time_chunk=config.evaluation.time_chunk,
    ) as ev:
        x_manu = space.manufacturer_values(ev.base_params)
        untuned = float(ev.mse(x_manu[None])[0])
        state = {"best": untuned}

        def progress(stage: str, done: int, best: float) -> None:
            state["best"] = min(state["best"], best)
            if feedback_cb:
                offset = k if stage == STAGE_REFINE else 0
                feedback_cb(stage, offset + done, total, state["best"])

        trace = SearchTrace()
        steps_before = ev.sim_steps
        rs = random_search(
            ev.mse_unit,
            space.dim,
            k,
            np.random.default_rng(seed),
            config.search.batch_size,
            trace,
            progress,
            stop,
        )
        best_u, best_f = rs.best_u, rs.best_cost
        stopped = rs.stopped
        if not stopped and n_refine > 0:
            if config.search.refiner == "cma":
                ref = cma_refine(
                    ev.mse_unit,
                    rs.best_u,
                    n_refine,
                    config.search.cma_sigma0,
                    config.search.cma_popsize,
                    seed,
                    trace,
                    progress,
                    stop,
                    start_cost=rs.best_cost,
                )
            else:
                ref = least_squares_refine(
                    ev.residuals_unit,
                    rs.best_u,
                    n_refine,
                    config.search.fd_eps,
                    trace,
                    progress,
                    stop,
                    start_cost=rs.best_cost,
                )
            best_u, best_f, stopped = ref.best_u, ref.best_cost, ref.stopped
        search_steps = ev.sim_steps - steps_before
        best_x = space.from_unit(best_u)
        result = AutotuneResult(
            success=not stopped,
            message="",
            cancelled=stopped,
            untuned_mse=untuned,
            random_search_mse=float(rs.best_cost),
            best_mse=float(min(best_f, untuned)),
            best_values=space.describe(best_x),
            evaluations=trace.evaluations,
            search_sim_steps=search_steps,
        )
        if best_f >= untuned:
            # the manufacturer model is still the best we know: report it honestly
            best_x, best_u, best_f = x_manu, space.to_unit(x_manu), untuned
            result.best_values = space.describe(best_x)
        if stopped:
            result.message = f"cancelled after {trace.evaluations} of {total} candidates"
            result.sim_steps, result.policy_steps = ev.sim_steps, ev.policy_steps
            result.elapsed_s = time.monotonic() - t0
            return result

        ident = report_mod.identifiability(ev.residuals_unit, best_u, best_f, config.report.sensitivity_delta)
        cand, costs = trace.top(max(5, trace.evaluations // 10))
        spread = report_mod.top_spread(cand, costs, len(cand))
        fits = report_mod.parameter_fits(
            space, best_x, x_manu, ident, spread, config.report.constrained_threshold, true_values
        )
        out = Path(out_dir) if out_dir is not None else Path("autotune_out")
        out.mkdir(parents=True, exist_ok=True)
        overlay_path = out / OVERLAY_NAME
        ev.params_for(best_x).to_yaml(overlay_path)

        seq = min(config.report.overlay_sequence, real.num_sequences - 1)
        sims = ev.simulate(np.stack([x_manu, best_x]))
        per_joint_err = ev.errors(sims)
        per_joint = {
            name: [float(per_joint_err[0, j]), float(per_joint_err[1, j])]
            for j, name in enumerate(ev.joint_names)
        }
        figures: list[Path] = []
        if make_plots:
            figures = report_mod.plot_overlays(
                out,
                real.times[seq],
                real.measured[seq],
                sims[0, seq],
                sims[1, seq],
                real.targets[seq],
                real.hand,
            )
        result.sim_steps, result.policy_steps = ev.sim_steps, ev.policy_steps
    result.elapsed_s = time.monotonic() - t0
    summary = {
        "untuned_mse": result.untuned_mse,
        "random_search_mse": result.random_search_mse,
        "best_mse": result.best_mse,
        "evaluations": result.evaluations,
        "sim_steps": result.sim_steps,
        "search_sim_steps": search_steps,
        "policy_steps": result.policy_steps,
        "elapsed_s": round(result.elapsed_s, 2),
        "groups": ", ".join(space.groups),
        "population": k,
        "refinement_evaluations": n_refine,
        "seed": seed,
        "overlay": overlay_path.name,
        "num_sequences": real.num_sequences,
        "samples_per_sequence": real.num_samples,
    }
    md, js = report_mod.write_report(out, summary=summary, fits=fits, per_joint=per_joint, figures=figures)
    result.overlay_path, result.report_path, result.report_json_path = overlay_path, md, js
    result.figures, result.fits = figures, fits
    result.message = (
        f"MSE {result.untuned_mse:.3g} untuned -> {result.random_search_mse:.3g} random search -> "
        f"{result.best_mse:.3g} refined ({result.evaluations} candidates, {result.elapsed_s:.1f} s)"
    )
    return result
