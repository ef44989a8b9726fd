"""The all-subtasks runner: every group trained, evaluated and packaged in turn; resumable after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from recipe_sim.ppo import all_subtasks
from recipe_sim.ppo.all_subtasks import EvalPlan, package_name, run_all_subtasks
from recipe_sim.ppo.checkpoint import read_metadata
from recipe_sim.ppo.config import load_config
from recipe_sim.ppo.envs import SubTask, randomization_config
from recipe_sim.ppo.packaged import load_specialist
from recipe_sim.ppo.training import TrainRequest

SUBTASKS = [
    SubTask("grasp_reach", "mix", 0, ("can_small",)),
    SubTask("grasp_reach", "mix", 1, ("cube_medium",)),
]
OVERRIDES = {"episode_length": 16}


def _base(out: Path, iterations: int) -> TrainRequest:
    cfg = load_config(profile="tiny").with_overrides(num_envs=4, iterations=iterations)
    return TrainRequest(sub=SUBTASKS[0], config=cfg, run_dir=out, seed=0,
                        randomization=randomization_config(False), iterations=iterations, no_init_states=True,
                        export=False, task_overrides=OVERRIDES)


PLAN = EvalPlan({"nominal": randomization_config(False)}, episodes=2, max_envs=2)


def _state(out: Path) -> dict:
    return json.loads((out / all_subtasks.STATE_FILE).read_text())["subtasks"]


def test_runs_every_subtask_then_skips_them_when_run_again(tmp_path, monkeypatch):
    out, root = tmp_path / "run", tmp_path / "specialists"
    records = run_all_subtasks(SUBTASKS, _base(out, 2), out, PLAN, package=True, packages_root=root,
                               log=lambda m: None)
    assert [r.status for r in records.values()] == ["packaged", "packaged"]
    for sub in SUBTASKS:
        spec = load_specialist(package_name(sub), root=root)
        assert spec.metadata["objects"] == list(sub.objects) and "nominal" in spec.eval_report["conditions"]
    assert package_name(SUBTASKS[0]) == "grasp_reach_mix_0"
    table = (out / "summary.md").read_text()
    assert "| mix[0] | can_small |" in table and "| mix[1] | cube_medium |" in table
    summary = json.loads((out / "summary.json").read_text())["subtasks"]
    assert summary["mix_1"]["env_steps"] == 2 * 4 * 16 and summary["mix_1"]["iterations"] == 2

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished sub-task was trained again")

    monkeypatch.setattr(all_subtasks, "train_specialist", must_not_train)
    run_all_subtasks(SUBTASKS, _base(out, 2), out, PLAN, package=True, packages_root=root, log=lambda m: None)


def test_an_interrupted_subtask_continues_from_its_newest_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = all_subtasks.train_specialist

    def killed_during_the_second(req, **kwargs):
        if req.sub.index == 1:
            real(replace(req, iterations=2), **kwargs)  # checkpoints model_0, model_1
            raise KeyboardInterrupt
        return real(req, **kwargs)

    monkeypatch.setattr(all_subtasks, "train_specialist", killed_during_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_all_subtasks(SUBTASKS, _base(out, 4), out, PLAN, log=lambda m: None)
    state = _state(out)
    assert state["mix_0"]["status"] == "evaluated" and state["mix_1"]["status"] == "training"
    first = Path(state["mix_0"]["checkpoint"])
    stamp = first.stat().st_mtime_ns

    monkeypatch.setattr(all_subtasks, "train_specialist", real)
    records = run_all_subtasks(SUBTASKS, _base(out, 4), out, PLAN, log=lambda m: None)
    assert first.stat().st_mtime_ns == stamp  # the finished sub-task was not touched
    second = records["mix_1"]
    assert second.status == "evaluated" and "resumed from model_1.pt for 2 more iterations" in second.history
    meta = read_metadata(Path(second.checkpoint))
    assert meta["iteration"] == 3 and meta["metrics"]["env_steps"] == 4 * 4 * 16


def test_resume_after_a_real_kill(tmp_path):
    """SIGKILL the runner while it trains the second sub-task; running it again finishes the job."""
    out = tmp_path / "run"
    run_all_subtasks(SUBTASKS[:1], _base(out, 2), out, PLAN, log=lambda m: None)  # the first one is done
    code = (
        f"import sys; from pathlib import Path; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_all_subtasks import SUBTASKS, PLAN, _base\n"
        "from recipe_sim.ppo.all_subtasks import run_all_subtasks\n"
        f"run_all_subtasks(SUBTASKS, _base(Path({str(out)!r}), 12), Path({str(out)!r}), PLAN, log=print)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ})
    try:
        deadline = time.monotonic() + 600
        while not (out / "mix_1" / "model_2.pt").is_file():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _state(out)["mix_1"]["status"] == "training"
    records = run_all_subtasks(SUBTASKS, _base(out, 12), out, PLAN, log=lambda m: None)
    assert [r.status for r in records.values()] == ["evaluated", "evaluated"]
    assert any(h.startswith("resumed from model_") for h in records["mix_1"].history)
    assert read_metadata(Path(records["mix_1"].checkpoint))["iteration"] == 11
