"""Search in the normalized parameter space [0, 1]^d: the paper's random search and two refinements.

The objective maps a batch of candidates (K, d) to their costs (K,) (tracking MSE), so one call is one
parallel simulation batch. Every stage reports progress through ``on_progress(stage, evaluated, best)``
and checks ``should_stop()`` between batches / generations / iterations, so a cancelled run returns what
it has. Refinements start from the random-search best and spend an exact candidate budget:

* ``cma_refine``: CMA-ES (derivative-free, robust to noisy or non-smooth costs);
* ``least_squares_refine``: MuJoCo's box-bounded Levenberg-Marquardt (``mujoco.minimize``, the solver of
  ``mujoco.sysid``) on the residual vector (sim - real), with finite-difference Jacobians whose d
  perturbed candidates are simulated as one parallel batch. Tracking MSE is a smooth sum of squares, so
  this converges in a handful of iterations where CMA-ES needs hundreds of samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .stopping import StopFn, never

Objective = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[str, int, float], None]

STAGE_RANDOM = "random_search"
STAGE_REFINE = "refinement"


@dataclass
class SearchTrace:
    """Every candidate evaluated (unit space) with its cost, in evaluation order."""

    candidates: list[np.ndarray] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)

    def add(self, u: np.ndarray, f: np.ndarray) -> None:
        self.candidates.extend(np.atleast_2d(u))
        self.costs.extend(float(v) for v in np.atleast_1d(f))

    @property
    def evaluations(self) -> int:
        return len(self.costs)

    def best(self) -> tuple[np.ndarray, float]:
        if not self.costs:
            raise ValueError("no candidate evaluated yet")
        i = int(np.argmin(self.costs))
        return self.candidates[i], self.costs[i]


@dataclass
class StageResult:
    best_u: np.ndarray
    best_cost: float
    evaluations: int
    stopped: bool


def _checked(objective: Objective, u: np.ndarray) -> np.ndarray:
    f = np.asarray(objective(u), dtype=np.float64).reshape(-1)
    if f.shape != (u.shape[0],):
        raise ValueError(f"objective returned {f.shape} costs for {u.shape[0]} candidates")
    # a diverged simulation is a bad candidate, not a crash
    return np.where(np.isfinite(f), f, np.inf)


def random_search(
    objective: Objective,
    dim: int,
    population: int,
    rng: np.random.Generator,
    batch_size: int = 32,
    trace: SearchTrace | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn = never,
) -> StageResult:
    """Algorithm 1 of the paper: K uniform samples, keep the lowest cost."""
    if population < 1:
        raise ValueError(f"population must be >= 1, got {population}")
    trace = trace if trace is not None else SearchTrace()
    best_u, best_f, done, stopped = np.full(dim, 0.5), np.inf, 0, False
    for start in range(0, population, batch_size):
        if should_stop():
            stopped = True
            break
        # drawn batch by batch (the same stream as drawing all at once): memory is bounded by the batch
        u = rng.uniform(0.0, 1.0, size=(min(batch_size, population - start), dim))
        f = _checked(objective, u)
        trace.add(u, f)
        done += len(u)
        i = int(np.argmin(f))
        if f[i] < best_f:
            best_u, best_f = u[i].copy(), float(f[i])
        if on_progress:
            on_progress(STAGE_RANDOM, done, best_f)
    return StageResult(best_u, best_f, done, stopped)


def cma_refine(
    objective: Objective,
    x0: np.ndarray,
    evaluations: int,
    sigma0: float = 0.15,
    popsize: int = 12,
    seed: int = 0,
    trace: SearchTrace | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn = never,
    start_cost: float = np.inf,
) -> StageResult:
    """CMA-ES from x0 within [0, 1]^d, using at most ``evaluations`` objective evaluations.

    Generations are whole populations; the last one is shrunk to fit the budget exactly so that comparisons
    at equal budget are exact. Returns the best of x0 (cost ``start_cost``) and everything evaluated.
    """
    import cma  # local: only this stage needs it

    trace = trace if trace is not None else SearchTrace()
    x0 = np.clip(np.asarray(x0, dtype=np.float64), 0.0, 1.0)
    best_u, best_f = x0.copy(), float(start_cost)
    if evaluations < 1 or x0.size < 1:
        return StageResult(best_u, best_f, 0, False)
    popsize = max(2, int(popsize))
    opts = {
        "bounds": [0.0, 1.0],
        "popsize": popsize,
        "seed": int(seed) % (2**31 - 1) + 1,
        "verbose": -9,
        "verb_log": 0,
        "verb_disp": 0,
        "CMA_diagonal": False,
    }
    es = cma.CMAEvolutionStrategy(x0.tolist(), float(sigma0), opts)
    done, stopped = 0, False
    while done < evaluations:
        if should_stop():
            stopped = True
            break
        remaining = evaluations - done
        asked = es.ask()
        u = np.clip(np.asarray(asked, dtype=np.float64), 0.0, 1.0)
        if remaining < len(u):
            # the last, partial generation is evaluated but cannot update the strategy (tell needs all)
            u = u[:remaining]
            f = _checked(objective, u)
            trace.add(u, f)
        else:
            f = _checked(objective, u)
            trace.add(u, f)
            es.tell(asked, np.where(np.isfinite(f), f, 1e30).tolist())
        done += len(u)
        i = int(np.argmin(f))
        if f[i] < best_f:
            best_u, best_f = u[i].copy(), float(f[i])
        if on_progress:
            on_progress(STAGE_REFINE, done, best_f)
    return StageResult(best_u, best_f, done, stopped)


ResidualFn = Callable[[np.ndarray], np.ndarray]  # (K, d) unit candidates -> (K, m) residuals, sum r^2 = cost


class _StopSearch(Exception):
    """Raised inside the least-squares residual callback to end the solver at the budget or on cancel."""


def least_squares_refine(
    residual_fn: ResidualFn,
    x0: np.ndarray,
    evaluations: int,
    fd_eps: float = 1e-3,
    trace: SearchTrace | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn = never,
    start_cost: float = np.inf,
) -> StageResult:
    """Levenberg-Marquardt (mujoco.minimize.least_squares) from x0 in [0, 1]^d, <= ``evaluations`` candidates.

    The solver is stopped from inside the residual callback when the budget is spent (a partially
    affordable batch is evaluated up to the budget and recorded), so the best candidate seen is returned
    whether or not the solver converged.
    """
    from mujoco import minimize

    trace = trace if trace is not None else SearchTrace()
    x0 = np.clip(np.asarray(x0, dtype=np.float64), 0.0, 1.0)
    state = {"done": 0, "best_u": x0.copy(), "best_f": float(start_cost), "stopped": False}
    if evaluations < 1 or x0.size < 1:
        return StageResult(x0, float(start_cost), 0, False)

    def residual(columns: np.ndarray) -> np.ndarray:
        if should_stop():
            state["stopped"] = True
            raise _StopSearch
        remaining = evaluations - state["done"]
        if remaining <= 0:
            raise _StopSearch
        u = np.clip(np.asarray(columns, dtype=np.float64).reshape(x0.size, -1).T, 0.0, 1.0)
        partial = len(u) > remaining
        u = u[:remaining]
        r = np.asarray(residual_fn(u), dtype=np.float64)
        r = np.where(np.isfinite(r), r, 1e3)  # a diverged rollout is a bad candidate, not a crash
        f = np.sum(r**2, axis=1)
        trace.add(u, f)
        state["done"] += len(u)
        i = int(np.argmin(f))
        if f[i] < state["best_f"]:
            state["best_u"], state["best_f"] = u[i].copy(), float(f[i])
        if on_progress:
            on_progress(STAGE_REFINE, state["done"], state["best_f"])
        if partial:
            raise _StopSearch
        return r.T

    try:
        minimize.least_squares(
            x0,
            residual,
            bounds=[np.zeros(x0.size), np.ones(x0.size)],
            eps=fd_eps,
            max_iter=10_000,
            xtol=1e-12,
            gtol=1e-14,
            verbose=0,
        )
    except _StopSearch:
        pass
    return StageResult(state["best_u"], state["best_f"], state["done"], state["stopped"])
