"""perception_vs_truth: perception's messages against the twin's truth at their capture times."""

import numpy as np
import pytest

from recipe_bringup.perception_vs_truth import Sample, compare, error_figures


def _truth() -> list[Sample]:
    # the object rests at z = 0.80 for 1 s, then rises 0.2 m/s
    return [Sample(10.0 + t, np.array([0.3, 0.1, 0.80 + max(t - 1.0, 0.0) * 0.2]))
            for t in np.arange(0, 3.01, 0.1)]


def test_errors_are_measured_against_the_truth_at_each_frames_capture_time_and_split_by_phase():
    truth = _truth()
    perceived = [
        Sample(10.05, np.array([0.31, 0.1, 0.80]), 1),          # on the table, 1 cm off
        Sample(12.5, np.array([0.3, 0.1, 0.80 + 1.5 * 0.2 + 0.04]), 3),  # lifted, 4 cm above the truth then
        Sample(12.7, np.array([np.nan, np.nan, np.nan]), 0),    # lost: no position
        Sample(20.0, np.array([0.3, 0.1, 0.8]), 1),             # after the recording: left out
    ]
    e = compare(perceived, truth)
    assert e.t.tolist() == pytest.approx([0.05, 2.5, 2.7])
    assert e.error[0] == pytest.approx(0.01) and e.error[1] == pytest.approx(0.04) and np.isnan(e.error[2])
    assert e.lifted.tolist() == [False, True, True]
    s = e.summary(far_m=0.03)
    assert s["table_median_m"] == pytest.approx(0.01) and s["lifted_max_m"] == pytest.approx(0.04)
    assert s["lifted_no_position"] == pytest.approx(0.5)
    assert s["share_lost"] == pytest.approx(1 / 3) and s["share_occluded"] == pytest.approx(1 / 3)
    assert s["first_far_s"] == pytest.approx(2.5)


def test_the_reset_before_the_trials_start_is_left_out_and_heights_count_from_the_start():
    truth = [Sample(0.0, np.array([0.75, 0.0, 0.70])), *_truth()]  # parked lower, before the spawn at 10 s
    e = compare([Sample(5.0, np.array([0.75, 0.0, 0.70])), Sample(10.5, np.array([0.3, 0.1, 0.80]))], truth,
                start=10.0)
    assert e.t.tolist() == pytest.approx([0.5]) and e.error[0] == pytest.approx(0.0)
    assert e.lifted.tolist() == [False]


def test_a_bag_without_the_twins_truth_is_named_as_such():
    with pytest.raises(ValueError, match="truth"):
        compare([Sample(0.0, np.zeros(3))], [])


def test_trials_pool_into_the_same_figures_as_one_trial_holding_all_their_messages():
    truth = _truth()
    first = compare([Sample(10.05, np.array([0.31, 0.1, 0.80]))], truth)
    second = compare([Sample(10.5, np.array([0.33, 0.1, 0.80])), Sample(12.7, np.full(3, np.nan), 0)], truth)
    pooled = error_figures([x.error[x.phase_mask("table")] for x in (first, second)])
    assert pooled["errors"] == 2 and pooled["median_m"] == pytest.approx(0.02)
    assert pooled["max_m"] == pytest.approx(0.03)
    # A trial counts every message; the error figures count those with a position.
    assert second.summary()["messages"] == 2 and error_figures([second.error])["errors"] == 1
    assert error_figures([])["median_m"] is None
    with pytest.raises(ValueError, match="phase"):
        first.phase_mask("carried")
