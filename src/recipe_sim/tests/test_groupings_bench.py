"""The groupings benchmark (benchmarks/groupings.py): each object is scored by its own group's specialist,
unfinished groups are named, and --report-only aggregates the all-subtasks runs already on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def b(load_benchmark):
    return load_benchmark("groupings")


def _summary(subtasks: dict) -> dict:
    return {"task": "grasp_reach", "grouping": "g", "eval_seed": 1000, "eval_episodes_per_object": 8,
            "subtasks": subtasks}


def _rec(objects: list[str], rates: dict[str, float] | None, minutes: float = 2.0, ckpt: str | None = None):
    ev = None if rates is None else {"low_noise": {**rates, "_overall": sum(rates.values()) / len(rates)}}
    return {"slug": "x", "label": "x", "objects": objects, "status": "evaluated" if ev else "training",
            "checkpoint": ckpt, "minutes": minutes, "env_steps": 2048, "iterations": 1, "eval": ev,
            "package": None, "history": []}


def test_each_object_is_scored_by_its_groups_specialist_and_the_unfinished_are_named(b):
    summary = _summary({"g_0": _rec(["a", "b"], {"a": 1.0, "b": 0.5}, minutes=3.0),
                        "g_1": _rec(["c"], None)})
    meta = {"g_0": {"demo_init": {"episodes_run": 450, "pairs": 40000}}}
    row = b.grouping_row(summary, meta)
    assert row["success"] == {"low_noise": {"a": 1.0, "b": 0.5}}  # "_overall" is not an object
    assert row["mean_success"] == {"low_noise": 0.75}
    assert (row["specialists"], row["groups"], row["minutes"]) == (1, 2, 3.0)
    assert (row["expert_episodes"], row["demonstration_pairs"]) == (450, 40000)
    assert row["objects_without_specialist"] == ["c"]
    table = b.markdown({"g": row}, ["a", "b", "c"], ["low_noise"], 8, 1000)
    assert "| g | 1/2 | 3.0 | 450 | 75.0% |" in table and "| g | 100% | 50% | - |" in table


def test_groupings_are_compared_on_the_objects_they_all_have(b):
    rows = {"single": {"success": {"low_noise": {"a": 1.0}}, "mean_success": {"low_noise": 1.0}},
            "all": {"success": {"low_noise": {"a": 0.5, "b": 0.0}}, "mean_success": {"low_noise": 0.25}}}
    assert b.add_common_means(rows, ["a", "b"], ["low_noise"]) == ["a"]
    assert rows["single"]["mean_common"] == {"low_noise": 1.0}
    assert rows["all"]["mean_common"] == {"low_noise": 0.5}  # b is left out: single has no result for it


def test_report_only_aggregates_the_runs_on_disk_and_says_what_is_missing(b, tmp_path: Path, capsys):
    run = tmp_path / "shape"
    (run / "shape_0" / "eval").mkdir(parents=True)
    (run / "shape_0" / "eval" / "eval.json").write_text(json.dumps({"seed": 1000, "episodes_per_object": 8}))
    # The runner's progress file, as it stands while a grouping is still training (no summary.json yet).
    (run / "subtasks.json").write_text(json.dumps({"task": "grasp_reach", "grouping": "shape", "subtasks": {
        "shape_0": _rec(["can_small"], {"can_small": 0.5}, ckpt=str(tmp_path / "gone" / "model_0.pt")),
        "shape_1": _rec(["cube_small"], None)}}))
    assert b.main(["--groupings", "shape", "mix", "--report-only", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "mix: no" in err and "skipped" in err  # the grouping never run is named
    assert "model_0.pt" in err and "not counted" in err  # a cleaned run still reports its success
    report = json.loads((tmp_path / "groupings.json").read_text())
    row = report["groupings"]["shape"]
    assert row["mean_success"] == {"low_noise": 0.5} and row["objects_without_specialist"] == ["cube_small"]
    assert (report["eval_seed"], report["eval_episodes_per_object"]) == (1000, 8)
    assert (tmp_path / "groupings.png").stat().st_size > 0
    assert "| shape | 50% | - |" in (tmp_path / "groupings.md").read_text()


def test_a_grouping_is_read_from_its_packages_and_a_foreign_package_is_refused(b, tmp_path: Path):
    from recipe_sim.ppo.envs import SubTask

    groups = [["can_small", "puck"], ["bottle"]]
    subs = [SubTask("grasp_reach", "mix", i, tuple(objs)) for i, objs in enumerate(groups)]
    for i, objs in enumerate(groups):
        folder = tmp_path / f"grasp_reach_mix_{i}"
        folder.mkdir()
        rates = {o: {"success_rate": 0.25 * (k + 1)} for k, o in enumerate(objs)}
        (folder / "eval.json").write_text(json.dumps({"seed": 1000, "episodes_per_object": 64,
                                                      "conditions": {"low_noise": rates}}))
        (folder / "metadata.json").write_text(json.dumps({
            "objects": objs, "metrics": {"wall_time_s": 6.0},
            "demo_init": {"seconds": 54.0, "bc_seconds": 60.0, "episodes_run": 500, "pairs": 100}}))
    summary, meta = b.package_summary(subs, tmp_path)
    row = b.grouping_row(summary, meta)
    assert row["success"]["low_noise"] == {"can_small": 0.25, "puck": 0.5, "bottle": 0.25}
    assert (row["specialists"], row["minutes"], row["expert_episodes"]) == (2, 4.0, 1000)
    with pytest.raises(ValueError, match=r"not mix\[0\]"):
        b.package_summary([SubTask("grasp_reach", "mix", 0, ("cube_small",))], tmp_path)
    with pytest.raises(FileNotFoundError, match="grasp_reach_mix_2"):
        b.package_summary([*subs, SubTask("grasp_reach", "mix", 2, ("ball_large",))], tmp_path)
    # Single-object groupings are packaged under the object's name, as the runner names them.
    with pytest.raises(FileNotFoundError, match="grasp_reach_single_puck"):
        b.package_summary([SubTask("grasp_reach", "single:puck", 0, ("puck",))], tmp_path)


def test_nothing_to_report_is_an_error(b, tmp_path: Path):
    assert b.main(["--report-only", "--out", str(tmp_path)]) == 1
