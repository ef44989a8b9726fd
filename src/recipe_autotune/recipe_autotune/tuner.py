"""run_autotune: untuned baseline -> random search (paper) -> refinement -> held-out check -> identifiability
-> overlay + report.

The training sequences are fitted; the held-out ones (Recording.split) are only predicted, by the
untuned, the random-search and the refined model, so the report can tell a model that predicts the robot
from one that memorised its training motion. Locked parameters (config ``lock``) are fixed in the base
model and written to the overlay as they are; parameters with a ``prior`` add a penalty to the search
cost. Every stage polls ``should_stop`` (and the simulator between bounded rollout calls), so a cancel
ends the run within about a second, writing nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import report as report_mod
from .config import AutotuneConfig
from .identify import Identification, identify
from .recording import Recording
from .search import STAGE_REFINE, SearchTrace, StageResult, cma_refine, least_squares_refine, random_search
from .space import ParameterSpace
from .stopping import Cancelled, StopFn, check, never
from .tracking import SimEvaluator, manufacturer_params

FeedbackFn = Callable[
    [str, int, int, float], None
]  # (stage, candidates_evaluated, candidates_total, best_mse)
STAGE_ANALYSIS = "analysis"
OVERLAY_NAME = "autotune_overlay.yaml"


@dataclass
class AutotuneResult:
    success: bool
    message: str
    cancelled: bool
    untuned_mse: float  # training MSE of the manufacturer model (rad^2)
    random_search_mse: float  # training MSE of the random-search best
    best_mse: float  # training MSE of the returned model
    best_values: dict[str, float]
    heldout_untuned_mse: float = float("nan")  # the same three models on the held-out sequences
    heldout_random_search_mse: float = float("nan")
    heldout_mse: float = float("nan")
    warnings: list[str] = field(default_factory=list)
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


@dataclass
class _Plan:
    """What one run fits: the spaces, the base model with the locks, the split and the budgets."""

    space: ParameterSpace  # the selected groups
    free: ParameterSpace  # the searched parameters
    base: Any  # ModelParams: manufacturer defaults with the locked parameters applied
    train: list[int]
    heldout: list[int]
    population: int
    refinements: int

    @property
    def total(self) -> int:
        return self.population + self.refinements


@dataclass
class _Fit:
    x_manufacturer: np.ndarray
    x_random: np.ndarray
    x_best: np.ndarray
    u_best: np.ndarray
    trace: SearchTrace
    search_sim_steps: int


@dataclass
class _Scores:
    """MSE of the untuned, random-search and refined model on the training and held-out sequences."""

    train: np.ndarray  # (3,)
    heldout: np.ndarray  # (3,) nan without held-out data
    per_joint: dict[str, list[float]]  # training MSE per joint: untuned, refined


def run_autotune(
    config: AutotuneConfig,
    real: Recording,
    groups: Sequence[str] | None = None,
    population: int = 0,
    seed: int = 0,
    feedback_cb: FeedbackFn | None = None,
    should_stop: StopFn | None = None,
    out_dir: str | Path | None = None,
    refinement_evaluations: int | None = None,
    true_values: dict[str, float] | None = None,
    make_plots: bool = True,
    design: dict[str, Any] | None = None,
) -> AutotuneResult:
    """Fit the selected parameter groups to ``real`` and write the overlay YAML and the fit report.

    population 0 / refinement_evaluations None take the config values. ``true_values`` (parameter name ->
    value, known for synthetic data only) adds the per-parameter error to the report; ``design`` (the
    excitation criterion of the motion, from design.py) is reported as given. On cancel nothing is
    written and the best values so far are returned with ``cancelled=True``.
    """
    t0 = time.monotonic()
    stop = should_stop or never
    plan = _plan(config, real, groups, population, refinement_evaluations)
    notify = _Progress(feedback_cb, plan)
    trace = SearchTrace()
    with SimEvaluator(
        real,
        plan.free,
        threads=config.evaluation.threads,
        joints=config.evaluation.joints,
        time_chunk=config.evaluation.time_chunk,
        max_steps_per_call=config.evaluation.max_steps_per_call,
        contacts=config.evaluation.contacts,
        base_params=plan.base,
        should_stop=stop,
    ) as ev:
        try:
            fit = _search(ev, plan, config, seed, trace, notify, stop)
            scores = _score(ev, plan, fit)
            notify(STAGE_ANALYSIS, plan.total, float(scores.train[2]))
            ident = _analyse(ev, plan, fit, config)
            check(stop)
            result = _result(plan, fit, scores, config, ev)
            request = _Request(Path(out_dir or "autotune_out"), make_plots, design, true_values, seed)
            _write_outputs(result, ev, plan, fit, scores, ident, config, request)
        except Cancelled:
            return _cancelled(plan, trace, ev, t0)
    result.elapsed_s = time.monotonic() - t0
    result.message = _summary_message(result)
    return result


# ---- steps ----
def _plan(
    config: AutotuneConfig,
    real: Recording,
    groups: Sequence[str] | None,
    population: int,
    refinement_evaluations: int | None,
) -> _Plan:
    if real.hand != config.hand:
        raise ValueError(f"recording is for the {real.hand!r} hand, config for {config.hand!r}")
    space = config.space.select(groups)
    free = space.free()
    if free.dim == 0:
        raise ValueError(f"every parameter of groups {space.groups} is locked: nothing to tune")
    base = space.locked_params(manufacturer_params(config.hand))
    train, heldout = real.split(config.validation.num_sequences)
    if not train:
        raise ValueError("every sequence of the recording is marked held-out: nothing to fit")
    n_refine = (
        config.search.refinement_evaluations if refinement_evaluations is None else refinement_evaluations
    )
    return _Plan(
        space=space,
        free=free,
        base=base,
        train=train,
        heldout=heldout,
        population=int(population) or config.search.population,
        refinements=int(n_refine),
    )


class _Progress:
    """Feedback with a running best and the candidate count over both search stages."""

    def __init__(self, feedback_cb: FeedbackFn | None, plan: _Plan) -> None:
        self.cb, self.plan, self.best = feedback_cb, plan, float("inf")

    def __call__(self, stage: str, done: int, best: float) -> None:
        self.best = min(self.best, best)
        if self.cb:
            offset = self.plan.population if stage == STAGE_REFINE else 0
            self.cb(stage, min(offset + done, self.plan.total), self.plan.total, self.best)


def _search(
    ev: SimEvaluator,
    plan: _Plan,
    config: AutotuneConfig,
    seed: int,
    trace: SearchTrace,
    notify: _Progress,
    stop: StopFn,
) -> _Fit:
    """Random search (paper's Algorithm 1), then the refinement from the manufacturer model; the best
    candidate of either is kept. Costs are training MSE plus the prior penalties.

    The refinement starts from the manufacturer model, not from the random-search best: in 18 dimensions
    64 random candidates land far from the robot in most parameters even when their MSE is lower, and
    Levenberg-Marquardt from there ended 2-5x above the manufacturer start's MSE with several parameters
    stuck at range edges (issue-19 robot and a random one, identical budgets).
    """
    free, weight = plan.free, config.search.prior_weight

    def cost(u: np.ndarray) -> np.ndarray:
        x = free.from_unit(np.atleast_2d(u))
        return ev.mse(x, plan.train) + np.sum(free.prior_residuals(x, weight) ** 2, axis=1)

    def residuals(u: np.ndarray) -> np.ndarray:
        x = free.from_unit(np.atleast_2d(u))
        return np.hstack([ev.residuals(x, plan.train), free.prior_residuals(x, weight)])

    steps_before = ev.sim_steps
    x_manu = free.manufacturer_values(plan.base)
    u_manu = free.to_unit(x_manu)
    f_manu = float(cost(u_manu[None])[0])
    rs = random_search(
        cost,
        free.dim,
        plan.population,
        np.random.default_rng(seed),
        config.search.batch_size,
        trace,
        notify,
        stop,
    )
    _raise_if(rs)
    best_u, best_f = (rs.best_u, rs.best_cost) if rs.best_cost < f_manu else (u_manu, f_manu)
    if plan.refinements > 0:
        s = config.search
        if s.refiner == "cma":
            ref = cma_refine(
                cost, u_manu, plan.refinements, s.cma_sigma0, s.cma_popsize, seed, trace, notify, stop, f_manu
            )
        else:
            ref = least_squares_refine(
                residuals, u_manu, plan.refinements, s.fd_eps, trace, notify, stop, f_manu
            )
        _raise_if(ref)
        if ref.best_cost < best_f:
            best_u, best_f = ref.best_u, ref.best_cost
    return _Fit(
        x_manufacturer=x_manu,
        x_random=free.from_unit(rs.best_u),
        x_best=free.from_unit(best_u),
        u_best=np.asarray(best_u, dtype=np.float64),
        trace=trace,
        search_sim_steps=ev.sim_steps - steps_before,
    )


def _raise_if(stage: StageResult) -> None:
    if stage.stopped:
        raise Cancelled


def _score(ev: SimEvaluator, plan: _Plan, fit: _Fit) -> _Scores:
    """Untuned, random-search and refined model on every sequence: training and held-out MSE."""
    seqs = plan.train + plan.heldout
    sims = ev.simulate(np.stack([fit.x_manufacturer, fit.x_random, fit.x_best]), seqs)
    n_train = len(plan.train)
    train_err = ev.errors(sims[:, :n_train], plan.train)
    train = train_err[:, ev.scored_joints].mean(axis=1)
    if plan.heldout:
        heldout = ev.errors(sims[:, n_train:], plan.heldout)[:, ev.scored_joints].mean(axis=1)
    else:
        heldout = np.full(3, np.nan)
    per_joint = {
        name: [float(train_err[0, j]), float(train_err[2, j])] for j, name in enumerate(ev.joint_names)
    }
    return _Scores(train=train, heldout=heldout, per_joint=per_joint)


def _analyse(ev: SimEvaluator, plan: _Plan, fit: _Fit, config: AutotuneConfig) -> Identification:
    """Identifiability of every free parameter at the fit (identify.py), on training and held-out data."""
    seqs = plan.train + plan.heldout
    n_train = len(plan.train)

    def simulate(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sim = ev.simulate(plan.free.from_unit(u), seqs)
        held = ev.residuals_of(sim[:, n_train:], plan.heldout) if plan.heldout else np.zeros((len(u), 0))
        return ev.residuals_of(sim[:, :n_train], plan.train), held

    r = config.report
    return identify(
        simulate,
        plan.free,
        fit.u_best,
        relative_tolerance=r.tolerance,
        offset_tolerance=r.offset_tolerance,
        threshold=r.constrained_threshold,
        edge_fraction=r.edge_fraction,
    )


def _result(
    plan: _Plan, fit: _Fit, scores: _Scores, config: AutotuneConfig, ev: SimEvaluator
) -> AutotuneResult:
    result = AutotuneResult(
        success=True,
        message="",
        cancelled=False,
        untuned_mse=float(scores.train[0]),
        random_search_mse=float(scores.train[1]),
        best_mse=float(scores.train[2]),
        best_values=plan.free.describe(fit.x_best),
        heldout_untuned_mse=float(scores.heldout[0]),
        heldout_random_search_mse=float(scores.heldout[1]),
        heldout_mse=float(scores.heldout[2]),
        evaluations=fit.trace.evaluations,
        search_sim_steps=fit.search_sim_steps,
        sim_steps=ev.sim_steps,
        policy_steps=ev.policy_steps,
    )
    result.warnings = _warnings(plan, scores, config)
    return result


def _warnings(plan: _Plan, scores: _Scores, config: AutotuneConfig) -> list[str]:
    out = []
    ratio_limit = config.report.heldout_warning_ratio
    if not plan.heldout:
        out.append("no held-out sequence: nothing checks that the model predicts motion it was not fitted to")
    elif scores.heldout[2] > ratio_limit * scores.train[2]:
        out.append(
            f"held-out MSE {scores.heldout[2]:.3g} is "
            f"{scores.heldout[2] / max(scores.train[2], 1e-300):.1f}x the training MSE "
            f"{scores.train[2]:.3g} (limit {ratio_limit:g}x): the model fits its training motion better "
            "than it predicts other motion"
        )
    if plan.heldout and scores.heldout[2] > scores.heldout[0]:
        out.append("the tuned model predicts the held-out motion worse than the untuned one")
    return out


@dataclass
class _Request:
    """What the caller asked to be written."""

    out_dir: Path
    make_plots: bool
    design: dict[str, Any] | None
    true_values: dict[str, float] | None
    seed: int


def _write_outputs(
    result: AutotuneResult,
    ev: SimEvaluator,
    plan: _Plan,
    fit: _Fit,
    scores: _Scores,
    ident: Identification,
    config: AutotuneConfig,
    request: _Request,
) -> None:
    """Overlay YAML, tracking figures (a training and a held-out sequence) and report.md/json.

    The figures' trajectories are simulated first; a stop while the files are written removes the
    ones already written, so a cancelled run leaves nothing behind.
    """
    traces = _plot_traces(ev, plan, fit) if request.make_plots else []
    out = request.out_dir
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        overlay_path = out / OVERLAY_NAME
        ev.params_for(fit.x_best).to_yaml(overlay_path)
        written.append(overlay_path)
        figures: list[Path] = []
        for prefix, seq, untuned, tuned in traces:
            check(ev.should_stop)
            rec = ev.recording
            figures += report_mod.plot_overlays(
                out, rec.times[seq], rec.measured[seq], untuned, tuned, rec.targets[seq], rec.hand, prefix
            )
            written[:] = [overlay_path, *figures]
        fits = report_mod.parameter_fits(
            plan.free, fit.x_best, fit.x_manufacturer, ident, request.true_values
        )
        edge = [f.name for f in fits if f.at_edge]
        if edge:
            result.warnings.append(
                f"at the edge of their range: {', '.join(edge)} (the true value may lie beyond it; widen "
                "the range or lock the parameter)"
            )
        result.sim_steps, result.policy_steps = ev.sim_steps, ev.policy_steps
        md, js = report_mod.write_report(
            out,
            summary=_summary(result, plan, request, ev),
            fits=fits,
            locked=plan.space.locked,
            warnings=result.warnings,
            design=request.design,
            tolerance={"relative": config.report.tolerance, "offset": config.report.offset_tolerance},
            per_joint=scores.per_joint,
            figures=figures,
        )
    except Cancelled:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    result.overlay_path, result.report_path, result.report_json_path = overlay_path, md, js
    result.figures, result.fits = figures, fits


def _summary(result: AutotuneResult, plan: _Plan, request: _Request, ev: SimEvaluator) -> dict[str, Any]:
    return {
        "untuned_mse": result.untuned_mse,
        "random_search_mse": result.random_search_mse,
        "best_mse": result.best_mse,
        "heldout_untuned_mse": result.heldout_untuned_mse,
        "heldout_random_search_mse": result.heldout_random_search_mse,
        "heldout_mse": result.heldout_mse,
        "evaluations": result.evaluations,
        "sim_steps": result.sim_steps,
        "search_sim_steps": result.search_sim_steps,
        "policy_steps": result.policy_steps,
        "groups": ", ".join(plan.space.groups),
        "population": plan.population,
        "refinement_evaluations": plan.refinements,
        "seed": request.seed,
        "overlay": OVERLAY_NAME,
        "train_sequences": len(plan.train),
        "heldout_sequences": len(plan.heldout),
        "samples_per_sequence": ev.recording.num_samples,
    }


def _plot_traces(ev: SimEvaluator, plan: _Plan, fit: _Fit) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(prefix, sequence, untuned, tuned trajectory) of the first training and held-out sequence."""
    traces = []
    for prefix, seqs in (("tracking", plan.train), ("heldout", plan.heldout)):
        if seqs:
            sims = ev.simulate(np.stack([fit.x_manufacturer, fit.x_best]), [seqs[0]])
            traces.append((prefix, seqs[0], sims[0, 0], sims[1, 0]))
    return traces


def _cancelled(plan: _Plan, trace: SearchTrace, ev: SimEvaluator, t0: float) -> AutotuneResult:
    nan = float("nan")
    best_values: dict[str, float] = {}
    best = nan
    if trace.evaluations:
        u, best = trace.best()
        best_values = plan.free.describe(plan.free.from_unit(u))
    return AutotuneResult(
        success=False,
        message=f"stopped after {trace.evaluations} of {plan.total} candidates, nothing written",
        cancelled=True,
        untuned_mse=nan,
        random_search_mse=nan,
        best_mse=float(best),
        best_values=best_values,
        evaluations=trace.evaluations,
        sim_steps=ev.sim_steps,
        policy_steps=ev.policy_steps,
        elapsed_s=time.monotonic() - t0,
    )


def _summary_message(r: AutotuneResult) -> str:
    text = (
        f"MSE {r.untuned_mse:.3g} untuned -> {r.random_search_mse:.3g} random search -> "
        f"{r.best_mse:.3g} refined ({r.evaluations} candidates, {r.elapsed_s:.1f} s)"
    )
    if np.isfinite(r.heldout_mse):
        text += (
            f"; held-out {r.heldout_untuned_mse:.3g} -> {r.heldout_random_search_mse:.3g} -> "
            f"{r.heldout_mse:.3g}"
        )
    if r.warnings:
        text += f"; {len(r.warnings)} warning(s)"
    return text
