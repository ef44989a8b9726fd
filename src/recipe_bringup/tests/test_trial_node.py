"""The twin process (driver sim backend + trial service) with real rclpy: reset, placement, verdict topic."""

import time

import numpy as np
import pytest
import rclpy

from recipe_bringup.twin import compose
from recipe_common.ros.shutdown import RosRunner
from recipe_interfaces.msg import ObjectState, TrialStatus
from recipe_interfaces.srv import ResetTrial


def _call(client, request, timeout=60.0):
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert future.done(), "no answer"
    return future.result()


@pytest.fixture()
def stack():
    with RosRunner([]) as ros:
        nodes = compose({"gr1_driver": {"sim_object": "can_medium", "camera_rate_hz": 0.0},
                         "trials": {"task": "grasp_reach", "truth_topic": "/object_truth"}})
        for n in nodes:
            ros.add(n, stop=getattr(n, "shutdown", None))
        client = ros.add(rclpy.create_node("trial_test_client"))
        ros.start()
        yield nodes, client


def test_reset_brings_the_robot_to_ready_and_places_the_object(stack):
    (driver, trials), client = stack
    status, truth = [], []
    client.create_subscription(TrialStatus, "/trial/status", status.append, 10)
    client.create_subscription(ObjectState, "/object_truth", truth.append, 10)
    reset = client.create_client(ResetTrial, "/trial/reset")
    res = _call(reset, ResetTrial.Request(seed=11))
    assert res.success, res.message
    assert res.trial_id == 1 and res.seed == 11 and res.object_name == "can_medium"
    assert len(res.goal) == 3 and len(res.final_goal) == 0 and res.time_limit == pytest.approx(10.0)
    twin = driver.backend.twin
    gt = twin.ground_truth()
    ready = trials._trials.ready_q
    assert np.max(np.abs(gt["q"][:14] - ready[:14])) < 0.05  # reached through the driver, not teleported
    placed = np.array([res.object_position.x, res.object_position.y, res.object_position.z])
    np.testing.assert_allclose(twin.object_position(), placed, atol=0.01)
    time.sleep(0.6)
    mine = [s for s in status if s.trial_id == 1]
    assert mine and mine[-1].state == TrialStatus.STATE_RUNNING and mine[-1].task == "grasp_reach"
    assert truth and truth[-1].header.frame_id == "world" and truth[-1].status == ObjectState.STATUS_TRACKING
    res2 = _call(reset, ResetTrial.Request(seed=-1))
    assert res2.success and res2.trial_id == 2 and res2.seed == 12  # -1: the next of the sequence


def test_reset_of_an_unknown_task_is_refused_with_the_reason(stack):
    _, client = stack
    res = _call(client.create_client(ResetTrial, "/trial/reset"), ResetTrial.Request(task="pour", seed=0))
    assert not res.success and "pour" in res.message
