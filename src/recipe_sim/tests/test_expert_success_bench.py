"""The experts' benchmark (benchmarks/expert_success.py): an expert's options reach it, bad ones are named."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def b(load_benchmark):
    return load_benchmark("expert_success")


def _one_episode(tmp_path, task: str, obj: str) -> list[str]:
    return ["--tasks", task, "--objects", obj, "--profiles", "nominal", "--episodes", "1", "--num-envs", "1",
            "--out", str(tmp_path)]


def test_expert_options_reach_the_expert_and_the_report(b, tmp_path):
    assert b.main([*_one_episode(tmp_path, "handover", "handover_block"), "--expert", "memoryless=true"]) == 0
    report = json.loads((tmp_path / "expert_success.json").read_text())
    assert report["expert_options"] == {"memoryless": True} and "handover" in report["tasks"]


def test_a_bad_expert_option_is_named(b, tmp_path, capsys):
    with pytest.raises(SystemExit):
        b.main(["--expert", "memoryless", "--out", str(tmp_path)])
    assert "--expert 'memoryless': expected KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"GraspReachExpert has no option\(s\) \['memoryless'\]"):
        b.main([*_one_episode(tmp_path, "grasp_reach", "can_small"), "--expert", "memoryless=true"])
