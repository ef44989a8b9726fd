"""Search stages on synthetic least-squares problems: budgets, cancellation, and refinement > random."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recipe_autotune.search import SearchTrace, cma_refine, least_squares_refine, random_search

DIM = 6


class Problem:
    """Residuals r(u) = A (u - u*) + 0.3 * sin(u - u*): smooth, ill-conditioned, minimum 0 at u*."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.target = rng.uniform(0.2, 0.8, DIM)
        self.a = rng.normal(size=(40, DIM)) * np.geomspace(1.0, 0.1, DIM)
        self.calls: list[int] = []

    def residuals(self, u: np.ndarray) -> np.ndarray:
        u = np.atleast_2d(u)
        self.calls.append(len(u))
        d = u - self.target
        return d @ self.a.T + 0.3 * np.sin(d).repeat(40 // DIM + 1, axis=1)[:, :40]

    def cost(self, u: np.ndarray) -> np.ndarray:
        return np.sum(self.residuals(u) ** 2, axis=1)


def test_random_search_evaluates_exactly_k_in_batches_and_keeps_the_best():
    p = Problem()
    trace = SearchTrace()
    res = random_search(p.cost, DIM, population=50, rng=np.random.default_rng(1), batch_size=16, trace=trace)
    assert res.evaluations == 50 == trace.evaluations
    assert p.calls == [16, 16, 16, 2]
    best_u, best_f = trace.best()
    assert res.best_cost == pytest.approx(best_f) and np.array_equal(res.best_u, best_u)
    assert res.best_cost == pytest.approx(float(p.cost(res.best_u[None])[0]))


@pytest.mark.parametrize("refiner", ["cma", "least_squares"])
def test_refinement_beats_random_search_at_equal_budget(refiner):
    k, budget = 32, 96
    for seed in range(3):
        p = Problem(seed)
        pure = random_search(p.cost, DIM, k + budget, np.random.default_rng(seed), 32)
        p2 = Problem(seed)
        trace = SearchTrace()
        first = random_search(p2.cost, DIM, k, np.random.default_rng(seed), 32, trace)
        if refiner == "cma":
            ref = cma_refine(p2.cost, first.best_u, budget, 0.2, 8, seed, trace, start_cost=first.best_cost)
        else:
            ref = least_squares_refine(
                p2.residuals, first.best_u, budget, 1e-4, trace, start_cost=first.best_cost
            )
        assert trace.evaluations <= k + budget, "refinement must not exceed its budget"
        assert ref.best_cost <= first.best_cost
        assert ref.best_cost < pure.best_cost, (
            f"seed {seed}: refined {ref.best_cost} vs random {pure.best_cost}"
        )


def test_least_squares_converges_on_a_smooth_problem():
    p = Problem(4)
    res = least_squares_refine(p.residuals, np.full(DIM, 0.5), 200, 1e-5)
    assert res.best_cost < 1e-8
    assert np.allclose(res.best_u, p.target, atol=1e-3)


@pytest.mark.parametrize("budget", [1, 5, 13, 40])
def test_budgets_are_exact(budget):
    p = Problem()
    trace = SearchTrace()
    res = least_squares_refine(p.residuals, np.full(DIM, 0.5), budget, 1e-4, trace)
    # the solver may converge before the budget is spent (it did at 40 here), never after
    assert res.evaluations == trace.evaluations <= budget
    if budget < 20:
        assert res.evaluations == budget
    p = Problem()
    trace = SearchTrace()
    res = cma_refine(p.cost, np.full(DIM, 0.5), budget, 0.2, 6, 0, trace)
    assert res.evaluations == trace.evaluations == budget


def test_should_stop_ends_each_stage_between_batches():
    p = Problem()
    calls = {"n": 0}

    def stop_after_first() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    res = random_search(p.cost, DIM, 100, np.random.default_rng(0), 10, should_stop=stop_after_first)
    assert res.stopped and res.evaluations == 10
    calls["n"] = 0
    res = cma_refine(p.cost, np.full(DIM, 0.5), 100, 0.2, 8, 0, should_stop=stop_after_first)
    assert res.stopped and res.evaluations == 8
    calls["n"] = 0
    res = least_squares_refine(p.residuals, np.full(DIM, 0.5), 100, 1e-4, should_stop=stop_after_first)
    assert res.stopped and res.evaluations == 1


def test_progress_reports_a_non_increasing_best():
    p = Problem()
    seen: list[tuple[str, int, float]] = []
    first = random_search(
        p.cost, DIM, 40, np.random.default_rng(0), 8, on_progress=lambda s, n, b: seen.append((s, n, b))
    )
    least_squares_refine(
        p.residuals,
        first.best_u,
        30,
        1e-4,
        on_progress=lambda s, n, b: seen.append((s, n, b)),
        start_cost=first.best_cost,
    )
    stages = [s for s, _, _ in seen]
    assert stages[0] == "random_search" and stages[-1] == "refinement"
    bests = [b for _, _, b in seen]
    assert all(b2 <= b1 for b1, b2 in itertools.pairwise(bests))


def test_non_finite_costs_count_as_bad_candidates():
    def cost(u: np.ndarray) -> np.ndarray:
        f = np.sum((u - 0.5) ** 2, axis=1)
        f[::2] = np.nan
        return f

    res = random_search(cost, 3, 20, np.random.default_rng(0), 20)
    assert np.isfinite(res.best_cost)
