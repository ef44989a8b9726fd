"""SIGINT and SIGTERM during a running /autotune goal: the server ends the goal and exits 0 within
seconds, and no Fast DDS shared-memory segment of it is left in /dev/shm.

Before, both signals were ignored while a goal ran (the executor's shutdown waited for the goal). A
module of its own: a second /autotune server (test_server_stop's) on the same ROS domain would take
goals meant for this one.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("recipe_interfaces.action", reason="needs the colcon-built recipe_interfaces")

from server_testing import LONG, Client, shm_segments, stop_test_files, stop_test_server, wait_until


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return stop_test_files(tmp_path_factory.mktemp("autotune_signals"))


def _mapped_anywhere(path: Path) -> bool:
    """Whether a live process still maps ``path`` (then it is a peer's segment, not a leak)."""
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            if str(path) in maps.read_text():
                return True
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_goal_stops_the_server_cleanly(files, sig):
    server = stop_test_server(files, sig.name)
    client = Client()
    try:
        assert client.wait_for_server(60.0), server.output()
        assert wait_until(lambda: shm_segments(server.proc.pid), 10.0), "no Fast DDS segment in /dev/shm"
        # the server also maps its peers' segments (the clients here); only its own must go with it
        segments = shm_segments(server.proc.pid) - shm_segments(os.getpid())
        handle = client.send(real_data_path=str(files[2]), **LONG)
        assert handle.accepted
        time.sleep(3.0)
        server.proc.send_signal(sig)
        code = server.proc.wait(timeout=20.0)  # ignored before: a goal kept running for many minutes
        assert code == 0, server.output()[-3000:]
        left = sorted(str(p) for p in segments if p.exists() and not _mapped_anywhere(p))
        assert not left, f"left in /dev/shm: {left}"
        assert "stopping:" in server.output() and "server shutting down: stopped after" in server.output()
    finally:
        client.close()
        server.stop()
