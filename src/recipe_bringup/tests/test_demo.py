"""The main job end to end: the deploy stack on the twin, one process per node, a trial, its bag; and Ctrl-C.

Uses the twin's ground-truth object position (``--object-source truth``) so the test does not depend on
the perception node's speed on a loaded CI machine; ``test_demo_perception`` below runs the full stack.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from recipe_bringup.bag_recorder import read_bag
from recipe_interfaces.msg import TrialStatus

ROOT = Path(__file__).resolve().parents[3]
FINAL = {TrialStatus.STATE_SUCCESS: "success", TrialStatus.STATE_FAILURE: "failure",
         TrialStatus.STATE_TIMEOUT: "timeout"}


def _marked_processes(marker: str) -> list[int]:
    """PIDs of live processes whose environment carries ``marker`` (the demo and everything it started)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if marker.encode() in (d / "environ").read_bytes():
                stat = (d / "stat").read_text()
                if stat.split(")")[-1].split()[0] != "Z":
                    pids.append(int(d.name))
        except OSError:
            continue
    return pids


def _demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    marker = f"RECIPE_TEST_MARKER={uuid.uuid4().hex}"
    env = dict(os.environ, RECIPE_TEST_MARKER=marker.split("=")[1], PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "recipe_bringup.embedded", "--out", str(tmp_path / "out"),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=ROOT)
    return proc, marker


def test_one_trial_through_the_stack_writes_a_readable_bag_and_summary(tmp_path):
    proc, marker = _demo(tmp_path, "--object-source", "truth", "--trials", "1", "--processes",
                         "--video-trials", "1")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "[trials] trial 1/1" in out and "trials succeeded" in out, out
    summary = (tmp_path / "out" / "summary.json")
    assert summary.is_file() and (tmp_path / "out" / "summary.png").is_file()
    import json

    s = json.loads(summary.read_text())
    result = s["results"][0]
    assert result["outcome"] in ("success", "failure", "timeout"), result
    assert s["policy_rate_hz"] and s["command_rate_hz"]
    assert Path(result["video"]).is_file()
    msgs = list(read_bag(result["bag"]))
    topics = {t for t, _, _ in msgs}
    assert {"/joint_states", "/joint_commands", "/object_state", "/policy/status", "/trial/status"} <= topics
    verdicts = [m for t, _, m in msgs if t == "/trial/status" and m.state in FINAL]
    assert verdicts and FINAL[verdicts[0].state] == result["outcome"]
    assert sum(t == "/joint_commands" for t, _, _ in msgs) > 10
    assert not _marked_processes(marker)


@pytest.mark.parametrize("processes", [True, False], ids=["processes", "composed"])
def test_sigint_stops_the_whole_stack_and_leaves_no_process(tmp_path, processes):
    args = ["--object-source", "truth", "--trials", "5", "--video-trials", "0", "--no-bag"]
    proc, marker = _demo(tmp_path, *args, *(["--processes"] if processes else []))
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "stack up" in line:
            break
    assert any("stack up" in line for line in lines), "".join(lines)
    time.sleep(3.0)  # mid-trial
    if processes:
        assert len(_marked_processes(marker)) >= 3  # the runner, the twin, the policy node
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, "".join(lines) + rest
    assert "Traceback" not in rest, rest
    assert elapsed < 15.0, f"stopping took {elapsed:.1f} s"
    time.sleep(0.5)
    assert not _marked_processes(marker)
