"""The grouping-generalists benchmark (benchmarks/grouping_generalists.py): which specialists a grouping's
collection takes, and the table that compares the distilled generalists with their specialists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def b(load_benchmark):
    return load_benchmark("grouping_generalists")


def _rec(objects: list[str], rates: dict[str, float] | None, ckpt: str | None) -> dict:
    ev = None if rates is None else {"low_noise": {**rates, "_overall": sum(rates.values()) / len(rates)}}
    return {"objects": objects, "checkpoint": ckpt, "eval": ev}


def test_a_specialist_without_a_success_gives_no_source_and_is_named(b, tmp_path: Path, capsys):
    run = tmp_path / "groupings" / "shape"
    run.mkdir(parents=True)
    (run / "subtasks.json").write_text(json.dumps({"subtasks": {
        "shape_0": _rec(["can_small", "puck"], {"can_small": 0.5, "puck": 0.0}, str(tmp_path / "m0.pt")),
        "shape_1": _rec(["cube_small"], None, None),  # never trained
        "shape_2": _rec(["ball_small"], {"ball_small": 0.0}, str(tmp_path / "m2.pt")),  # collect would wait
    }}))
    packages = tmp_path / "out" / "specialists"
    (packages / "shape_0").mkdir(parents=True)
    (packages / "shape_0" / "eval.json").write_text("{}")  # packaged by an earlier run: not packaged again
    sources = b.specialist_sources("shape", tmp_path / "groupings", packages, committed=False)
    assert sources == [str(packages / "shape_0")]
    err = capsys.readouterr().err
    assert "shape/shape_1" in err and "shape/shape_2" in err and "left out" in err
    with pytest.raises(FileNotFoundError, match="bench groupings"):
        b.specialist_sources("mix", tmp_path / "groupings", packages, committed=False)


def test_the_row_compares_the_generalist_with_its_own_specialists_on_the_same_objects(b, tmp_path: Path):
    folder = tmp_path / "single_0"
    folder.mkdir()
    (folder / "eval.json").write_text(json.dumps({"conditions": {
        "low_noise": {"can_small": {"success_rate": 0.75}, "_overall": {"success_rate": 0.75}},
        "nominal": {"can_small": {"success_rate": 1.0}, "_overall": {"success_rate": 1.0}}}}))
    spec = b.specialist_success([str(folder)])
    assert spec == {"can_small": 0.75}  # the collection profile's condition, not nominal
    ev = {"episodes_per_object": 8, "seed": 3535, "conditions": {"randomized": {"single": {
        "_overall": {"success_rate": 0.25}, "can_small": {"success_rate": 0.5},
        "puck": {"success_rate": 0.0}}}}}
    rec = {"dataset": {"sources": [{}, {}], "steps": 1200,
                       "counts": {"can_small": {"episodes": 9, "steps": 900},
                                  "puck": {"episodes": 3, "steps": 300}}},
           "training": {"step": 40, "wall_s": 90.0, "validation_executed_row_mse": 2e-3}}
    row = b.grouping_row("single", ev, rec, spec)
    assert row["success"] == {"can_small": 0.5, "puck": 0.0} and row["mean"] == 0.25
    assert row["specialist_success"] == {"can_small": 0.75, "puck": 0.0}  # no specialist for puck: 0
    assert (row["specialists"], row["train_minutes"], row["kept_episodes"]["puck"]) == (2, 1.5, 3)
    table = b.markdown({"single": row}, ["can_small", "puck"])
    assert "| single | 2 | 25.0% | 37.5% | 1.5 | 2.0e-03 | 50% (75%) | 0% (0%) |" in table
    assert "| single | 9 | 3 |" in table


def test_nothing_to_report_is_an_error(b, tmp_path: Path):
    assert b.main(["--report-only", "--out", str(tmp_path)]) == 1
