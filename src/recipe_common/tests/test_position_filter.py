"""The object-position filter: exponential smoothing per row, restarts per row, weight 0 is the identity."""

import numpy as np
import pytest

from recipe_common.position_filter import ExponentialFilter, check_weight, recorded_weight


def test_a_row_takes_its_first_reading_then_blends_each_new_one_with_its_estimate():
    f = ExponentialFilter(0.75, rows=2)
    first = f(np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    np.testing.assert_allclose(first, [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    second = f(np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 4.0]]))
    np.testing.assert_allclose(second, [[1.5, 0.0, 0.0], [0.0, 2.0, 1.0]])


def test_a_restarted_row_forgets_its_estimate_and_the_other_rows_keep_theirs():
    f = ExponentialFilter(0.5, rows=3)
    f(np.zeros((3, 3)))
    f.restart([1])
    out = f(np.full((3, 3), 2.0))
    np.testing.assert_allclose(out[:, 0], [1.0, 2.0, 1.0])
    f.restart()
    np.testing.assert_allclose(f(np.full((3, 3), 7.0)), 7.0)


def test_weight_zero_is_the_identity_and_the_readings_are_not_changed():
    f = ExponentialFilter(0.0, rows=4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(size=(4, 3))
        kept = x.copy()
        np.testing.assert_array_equal(f(x), x)
        np.testing.assert_array_equal(x, kept)


def test_the_estimate_of_noisy_readings_of_a_still_object_is_closer_than_the_readings():
    f = ExponentialFilter(0.85, rows=2000)
    rng = np.random.default_rng(1)
    for _ in range(30):
        est = f(rng.normal(0.0, 0.02, size=(2000, 3)))
    assert est.std() < 0.5 * 0.02


@pytest.mark.parametrize("weight", [1.0, -0.1, float("nan"), True, "0.5"])
def test_a_weight_outside_zero_to_one_is_refused_by_name(weight):
    with pytest.raises(ValueError, match="object_pos_filter"):
        check_weight(weight)


def test_readings_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        ExponentialFilter(0.5, rows=2)(np.zeros((3, 3)))


def test_a_record_from_before_the_weight_was_recorded_reads_as_raw_positions():
    assert recorded_weight({"task": "handover"}) == 0.0
    assert recorded_weight({"object_pos_filter": 0.85}) == 0.85
