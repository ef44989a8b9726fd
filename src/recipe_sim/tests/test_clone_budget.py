"""The clone-budget benchmark (benchmarks/clone_budget.py): budgets parsed, the clone fits and acts."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def b(load_benchmark):
    return load_benchmark("clone_budget")


def test_budgets_are_steps_by_batch_and_bad_ones_are_named(b):
    assert b.parse_budget("4000x64") == (4000, 64)
    for bad in ("4000", "x64", "4000x0", "ax64"):
        with pytest.raises(ValueError, match=f"{bad!r} is not STEPSxBATCH"):
            b.parse_budget(bad)


def test_a_larger_budget_fits_closer_and_the_clone_acts_like_an_exported_actor(b):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2600, 5))
    y = np.tanh(x @ rng.normal(size=(5, 3))) * 0.5 + 0.2  # a smooth deterministic "specialist"
    small, large = b.MLPClone(x, y, 64, seed=0), b.MLPClone(x, y, 64, seed=0)
    assert large.fit(x, y, 600, 128, 1e-3, seed=0) < small.fit(x, y, 20, 16, 1e-3, seed=0)
    out = large(x[:4])
    assert out.shape == (4, 3) and large.obs_dim == 5
    assert np.abs(out - y[:4]).max() < 0.1  # in action units (the normalizers are undone)
    assert large(x[0]).shape == (1, 3)  # one row, as the runtime calls a specialist
