"""/autotune end to end in the embedded default: driver (sim backend, hidden overlay) + server, client here.

Three processes: the gr1 driver with the SimTwin and a hidden overlay ("the real robot"), the autotune
action server, and this test (action client, tapping /joint_commands and /joint_states). Checks a full
live goal (feedback, result, overlay file) and a cancel during the calibration motion (hold, then a
straight ramp home, no calibration target after the cancel).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import yaml

pytest.importorskip("recipe_interfaces.action", reason="needs the colcon-built recipe_interfaces")
pytest.importorskip("recipe_gr1_driver.node", reason="needs recipe_gr1_driver")

from server_testing import Client, NodeProcess, wait

from recipe_autotune import calibration
from recipe_autotune.config import config_from_dict, default_config_path
from recipe_autotune.synthetic import DEFAULT_HIDDEN_OVERLAY

GROUPS = {
    "gains": {
        "parameters": [
            {
                "name": "shoulder_kp",
                "path": "joints.*_shoulder_*_joint.kp",
                "mode": "scale",
                "range": [0.6, 1.5],
                "sampling": "log",
            },
            {
                "name": "elbow_kd",
                "path": "joints.*_elbow_pitch_joint.kd",
                "mode": "scale",
                "range": [0.5, 3.0],
                "sampling": "log",
            },
        ]
    },
    "coupling": {
        "parameters": [
            {
                "name": "finger_coupling_k",
                "path": "coupling.?_*_intermediate_joint.k",
                "mode": "scale",
                "range": [0.85, 1.15],
            },
        ]
    },
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autotune_live")
    raw = copy.deepcopy(yaml.safe_load(default_config_path().read_text()))
    raw["groups"] = GROUPS
    raw["calibration"].update(
        duration_s=4.0, num_sequences=1, ramp_s=1.0, settle_s=0.5, return_home_max_velocity=1.2
    )
    raw["search"].update(population=6, refinement_evaluations=6, batch_size=6)
    config_path = tmp / "autotune.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    hidden = tmp / "hidden.yaml"
    hidden.write_text(
        yaml.safe_dump({"format": "recipe_sim/params/v1", "hand": "fourier", **DEFAULT_HIDDEN_OVERLAY})
    )
    driver = NodeProcess(
        "recipe_gr1_driver.node",
        {"backend": "sim", "camera_rate_hz": 0.0, "sim_overlay": str(hidden)},
        tmp / "driver.log",
    )
    server = NodeProcess(
        "recipe_autotune.server",
        {"config_path": str(config_path), "output_dir": str(tmp / "out")},
        tmp / "server.log",
    )
    client = Client()
    try:
        assert client.wait_for_server(40.0), server.output()
        deadline = time.monotonic() + 30.0
        while not client.states and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.states, f"driver publishes no /joint_states:\n{driver.output()}"
        yield client, config_from_dict(raw), server, driver, tmp
    finally:
        client.close()
        server.stop()
        driver.stop()


def test_live_goal_records_through_the_driver_and_tunes(setup):
    client, _, server, driver, _ = setup
    client.feedback.clear()
    handle = client.send(parameter_groups=[], population_size=0, num_sequences=0, seed=0, real_data_path="")
    assert handle.accepted
    result = wait(handle.get_result_async(), 90.0).result
    assert result.success, f"{result.message}\n{server.output()[-3000:]}"
    assert result.best_mse < result.untuned_mse and result.random_search_mse >= result.best_mse
    time.sleep(0.3)  # feedback and result travel on different topics: let the last feedback land
    stages = [fb.stage for fb in client.feedback]
    assert stages[:2] == ["design", "recording"] and "random_search" in stages and "refinement" in stages
    assert np.isfinite(result.heldout_mse) and result.heldout_mse < result.heldout_untuned_mse
    assert max(fb.candidates_evaluated for fb in client.feedback) == 12
    assert {fb.candidates_total for fb in client.feedback} == {12}
    from recipe_sim.model.params import ModelParams

    overlay = ModelParams.from_yaml(result.overlay_path)
    assert overlay.get("coupling.L_index_intermediate_joint.k") != pytest.approx(0.975)
    assert result.report_path.endswith("report.md")
    assert driver.alive() and server.alive()


def test_cancel_during_calibration_holds_then_ramps_home(setup):
    client, config, server, driver, _ = setup
    home = calibration.home_pose(config.calibration, config.hand)
    handle = client.send(
        parameter_groups=["gains"], population_size=0, num_sequences=2, seed=1, real_data_path=""
    )
    assert handle.accepted
    # wait until the calibration motion itself runs (past the pre-positioning ramp), then cancel
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        with client.lock:
            last = client.commands[-1][1] if client.commands else None
        if last is not None and np.abs(last - home).max() > 0.15 and len(client.feedback) >= 1:
            break
        time.sleep(0.05)
    else:
        pytest.fail("calibration motion never started")
    time.sleep(0.6)
    wait(handle.cancel_goal_async(), 10.0)
    t_cancel = time.monotonic()
    response = wait(handle.get_result_async(), 30.0)
    assert response.status == 5, f"expected CANCELED, got status {response.status}"  # GoalStatus.CANCELED
    assert not response.result.success and "cancel" in response.result.message
    time.sleep(0.5)
    with client.lock:
        after = np.array([q for t, q in client.commands if t > t_cancel + 0.3])
        state = client.states[-1][1][:26]
    assert len(after) >= 3
    # every command after the cancel lies on one straight segment from the hold pose to home, moving
    # monotonically towards home: no calibration target is sent any more
    start = after[0]
    span = home - start
    w = (after - start) @ span / max(float(span @ span), 1e-12)
    off_line = np.abs(after - (start + w[:, None] * span)).max()
    assert off_line < 1e-6, f"a command left the hold->home segment by {off_line:.3g} rad"
    assert np.all(np.diff(w) >= -1e-9) and w[-1] == pytest.approx(1.0)
    assert np.abs(state - home).max() < 0.08, "the robot should end at home"
    assert server.alive() and driver.alive()


def test_recorded_data_goal_and_invalid_goals(setup, tmp_path):
    client, config, server, _, tmp = setup
    # the live goal above saved its recording next to its results: tune from that file instead
    recordings = sorted((tmp / "out").glob("*/recording.npz"))
    assert recordings, "the live goal should have saved recording.npz"
    client.feedback.clear()
    handle = client.send(
        parameter_groups=["coupling"],
        population_size=6,
        num_sequences=1,
        seed=2,
        real_data_path=str(recordings[0]),
    )
    assert handle.accepted
    result = wait(handle.get_result_async(), 60.0).result
    assert result.success, result.message
    assert result.best_mse < result.untuned_mse, result.message
    time.sleep(0.3)
    assert not {"design", "recording"} & {fb.stage for fb in client.feedback}
    assert client.feedback[-1].candidates_total == 6 + config.search.refinement_evaluations
    # goals that cannot run are rejected up front, before any motion
    assert not client.send(parameter_groups=["no_such_group"]).accepted
    assert not client.send(real_data_path=str(tmp_path / "missing.npz")).accepted
    assert server.alive()
