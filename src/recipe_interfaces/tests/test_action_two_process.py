"""The generated Autotune action works between two processes (server subprocess, client here)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs the workspace environment (./dev test)")
from rclpy.action import ActionClient  # noqa: E402

from recipe_interfaces.action import Autotune  # noqa: E402
from recipe_interfaces.msg import ObjectState, PolicyStatus  # noqa: E402

SERVER = Path(__file__).with_name("autotune_echo_server.py")


@pytest.fixture()
def server_process():
    proc = subprocess.Popen(
        [sys.executable, str(SERVER)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "READY" in line, f"server did not start: {line!r}"
    yield proc
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.fixture()
def client_node():
    rclpy.init()
    node = rclpy.create_node("autotune_test_client")
    yield node
    node.destroy_node()
    rclpy.shutdown()


def _spin_until(node, future, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    assert future.done(), "timed out waiting for the action server"


def test_goal_feedback_result_cross_processes(server_process, client_node):
    client = ActionClient(client_node, Autotune, "autotune")
    assert client.wait_for_server(timeout_sec=20.0), "action server not discovered"
    feedback: list[Autotune.Feedback] = []
    goal = Autotune.Goal(parameter_groups=["arm_pd", "hand_coupling"], population_size=4, num_sequences=3,
                         seed=-7, real_data_path="/data/bag")
    send = client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback))
    _spin_until(client_node, send, 10.0)
    handle = send.result()
    assert handle.accepted
    result_future = handle.get_result_async()
    _spin_until(client_node, result_future, 15.0)
    result = result_future.result().result
    assert result.success
    assert result.message == "arm_pd,hand_coupling|3|-7|/data/bag"
    assert result.best_mse == pytest.approx(0.5**4)
    assert result.overlay_path == "/tmp/overlay.yaml"
    assert [f.candidates_evaluated for f in feedback] == [1, 2, 3, 4]
    assert all(f.candidates_total == 4 and f.stage == "random_search" for f in feedback)


def test_cancel_crosses_processes(server_process, client_node):
    client = ActionClient(client_node, Autotune, "autotune")
    assert client.wait_for_server(timeout_sec=20.0)
    send = client.send_goal_async(Autotune.Goal(population_size=200))
    _spin_until(client_node, send, 10.0)
    handle = send.result()
    cancel = handle.cancel_goal_async()
    _spin_until(client_node, cancel, 10.0)
    result_future = handle.get_result_async()
    _spin_until(client_node, result_future, 15.0)
    res = result_future.result()
    assert res.result.message == "canceled"
    assert not res.result.success


def test_message_constants_and_fields():
    assert (PolicyStatus.STATE_IDLE, PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_HOLDING,
            PolicyStatus.STATE_FAULT) == (0, 1, 2, 3)
    msg = ObjectState(confidence=0.9, status=ObjectState.STATUS_TRACKING)
    msg.header.frame_id = "base_link"
    msg.position.x = 0.4
    assert msg.position.x == 0.4 and msg.header.frame_id == "base_link"
    assert ObjectState.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "position": "geometry_msgs/Point", "confidence": "float",
        "status": "uint8",
    }
