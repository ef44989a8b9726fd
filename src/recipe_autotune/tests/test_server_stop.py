"""/autotune under stress: goals out of range, cancel during a long search; the CLI on SIGINT/SIGTERM.

Each of these hung or crashed before: population 10^9 was accepted and died in a 156 GiB allocation; a
cancel during a long search got no result for minutes (the search checked only between batches) and
the busy lock kept every later goal out. Signals to the server: test_server_signals.py.
The server runs in a subprocess (recipe_common.node_process), on recorded data, so no driver is needed.
A run here would take many minutes if nothing stopped it; the timeouts are a few seconds plus start-up.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("recipe_interfaces.action", reason="needs the colcon-built recipe_interfaces")

from server_testing import (
    LONG,
    ROOT,
    Client,
    stop_test_files,
    stop_test_server,
    wait,
    wait_until,
)

CANCELED = 5  # action_msgs/GoalStatus


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return stop_test_files(tmp_path_factory.mktemp("autotune_stop"))


@pytest.fixture(scope="module")
def running(files):
    server = stop_test_server(files, "main")
    client = Client()
    try:
        assert client.wait_for_server(60.0), server.output()
        yield client, server
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize(
    ("goal", "field", "allowed"),
    [
        ({"population_size": 10**9}, "population_size", "[0, 4096]"),
        ({"num_sequences": 100_000}, "num_sequences", "[0, 64]"),
        ({"seed": -1}, "seed", "[0, 4294967295]"),
        ({"parameter_groups": ["no_such_group"]}, "parameter_groups", "unknown parameter group"),
        ({"real_data_path": "/nonexistent/recording.npz"}, "real_data_path", "does not exist"),
    ],
)
def test_goals_out_of_range_are_rejected_naming_field_and_range(running, goal, field, allowed):
    client, server = running
    handle = client.send(**goal)
    assert not handle.accepted
    assert wait_until(lambda: f"rejecting goal: {field}" in server.output(), 10.0), server.output()[-2000:]
    line = next(x for x in server.output().splitlines() if f"rejecting goal: {field}" in x)
    assert allowed in line, line
    assert server.alive()


def test_cancel_during_a_long_search_ends_promptly_and_frees_the_server(running, files):
    client, server = running
    rec_path = str(files[2])
    handle = client.send(real_data_path=rec_path, **LONG)
    assert handle.accepted
    time.sleep(3.0)  # into the search: the untuned baseline takes a fraction of a second
    wait(handle.cancel_goal_async(), 10.0)
    response = wait(handle.get_result_async(), 30.0)  # the uncancelled batch would take many minutes
    assert response.status == CANCELED, response.result.message
    assert "cancel" in response.result.message
    # the busy lock is free again: the next goal runs to the end
    client.feedback.clear()
    handle = client.send(real_data_path=rec_path, population_size=4, seed=2)
    assert handle.accepted
    result = wait(handle.get_result_async(), 120.0).result
    assert result.success, result.message + server.output()[-3000:]
    assert np.isfinite(result.heldout_mse) and result.heldout_mse < result.heldout_untuned_mse
    assert server.alive()


@pytest.mark.parametrize(
    ("sig", "source", "marker"),
    [
        (signal.SIGINT, "--real", "fitting"),  # during the search
        (signal.SIGTERM, "--real", "fitting"),
        (signal.SIGTERM, "--hidden-overlay", "designing"),  # during the design and the twin recording
    ],
    ids=["SIGINT-search", "SIGTERM-search", "SIGTERM-design"],
)
def test_cli_stops_on_signal_with_exit_0_and_writes_nothing(files, tmp_path, sig, source, marker):
    import subprocess
    import sys

    _, config_path, rec_path = files
    out, log = tmp_path / "out", tmp_path / "cli.log"
    data = [source, str(rec_path) if source == "--real" else "default"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recipe_autotune.cli", "--config", str(config_path), *data,
             "--population", "4096", "--out", str(out)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            assert wait_until(lambda: marker in log.read_text() or proc.poll() is not None, 60.0)
            time.sleep(0.5)
            proc.send_signal(sig)
            code = proc.wait(timeout=20.0)
        finally:
            if proc.poll() is None:  # no ROS in the CLI's --real/--hidden-overlay modes: nothing in /dev/shm
                proc.kill()
                proc.wait()
    assert code == 0, log.read_text()
    assert "stopped" in log.read_text()
    assert not (out / "autotune_overlay.yaml").exists()
