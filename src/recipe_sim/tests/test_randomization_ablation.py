"""The leave-one-out randomization ablation (benchmarks/randomization_ablation.py)."""

from __future__ import annotations

import json

import pytest

from recipe_common.paths import config_path
from recipe_sim.randomization import CAMERA_ITEMS, RandomizationConfig


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("randomization_ablation")


def test_without_switches_off_exactly_one_item():
    base = RandomizationConfig()
    off = base.without("action_noise")
    assert not off.action_noise.enabled
    assert off.action_noise.std == base.action_noise.std
    assert off.enabled_items() == [n for n in base.enabled_items() if n != "action_noise"]
    with pytest.raises(ValueError, match="no item 'gravity'"):
        base.without("gravity")


def test_default_conditions_skip_the_camera_items_and_disabled_ones(bench):
    base = RandomizationConfig().without("frame_lag")
    profiles = bench.ablation_profiles(base)
    assert profiles["profile"] == base
    assert profiles["none"].enabled_items() == []
    ablated = {k.removeprefix("without ") for k in profiles if k.startswith("without ")}
    assert ablated == set(base.enabled_items()) - set(CAMERA_ITEMS)
    assert "frame_lag" not in ablated
    for name in ablated:
        assert profiles[f"without {name}"].enabled_items() == [n for n in base.enabled_items() if n != name]


def test_naming_an_unknown_or_disabled_item_is_an_error(bench):
    base = RandomizationConfig().without("frame_lag")
    with pytest.raises(ValueError, match="no item 'gravity'"):
        bench.ablation_profiles(base, ["gravity"])
    with pytest.raises(ValueError, match="frame_lag is already off"):
        bench.ablation_profiles(base, ["frame_lag"])


def test_table_orders_items_by_gain_over_the_profile(bench):
    rows = bench.ablation_table(
        {"profile": (0.7, 100), "none": (0.9, 100), "without a": (0.72, 100), "without b": (0.85, 100)}
    )
    assert [r["condition"] for r in rows] == ["profile", "none", "without b", "without a"]
    assert rows[2]["gain_points"] == pytest.approx(15.0)
    assert rows[0]["standard_error"] == pytest.approx((0.7 * 0.3 / 100) ** 0.5)
    with pytest.raises(ValueError, match="'profile'"):
        bench.ablation_table({"none": (0.9, 100)})


def test_expert_ablation_runs_end_to_end(bench, tmp_path):
    out = tmp_path / "abl"
    rc = bench.main(["--expert", "--items", "action_noise", "--episodes", "8", "--num-envs", "8",
                     "--randomization", str(config_path("randomization_low_noise.yaml")), "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "ablation.json").read_text())
    rows = {r["condition"]: r for r in report["rows"]}
    assert set(rows) == {"profile", "none", "without action_noise"}
    assert all(r["episodes"] == 8 for r in rows.values())
    # The scripted grasp lifts the can in most nominal episodes (93% of 256 measured).
    assert rows["none"]["success"] >= 0.5
    assert (out / "ablation.png").stat().st_size > 0


def test_a_missing_profile_file_is_reported(bench, tmp_path, capsys):
    rc = bench.main(["--expert", "--randomization", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)])
    assert rc == 1
    assert "nope.yaml" in capsys.readouterr().err
