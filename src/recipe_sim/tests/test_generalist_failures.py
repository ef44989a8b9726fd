"""The failure-analysis benchmark's measures (benchmarks/generalist_failures.py)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def b(load_benchmark):
    return load_benchmark("generalist_failures")


def test_lag_finds_how_many_steps_one_command_sequence_trails_another(b):
    ref = np.cumsum(np.linspace(0.0, 1.0, 12))[:, None] * np.ones((1, 3))
    assert b._lag(ref, ref) == 0
    trailing = np.concatenate([ref[:2] * 0 + ref[0], ref[:-2]])  # the same commands two steps later
    assert b._lag(trailing, ref) == 2


def test_first_contact_reports_the_step_bodies_and_closer_palm_distance(b):
    row = lambda contacts: {  # noqa: E731
        "contacts": contacts,
        "palms": np.array([[[0.0, 0.1, 0.0], [0.0, -0.3, 0.0]]]),
        "pos": np.zeros((1, 3)),
    }
    rows = [row([[]]), row([["L_thumb_distal_link"]])]
    step, bodies, dist = b._first_contact(rows, 0)
    assert (step, bodies) == (1, ["L_thumb_distal_link"]) and abs(dist - 0.1) < 1e-9
    assert b._first_contact(rows[:1], 0)[0] is None
