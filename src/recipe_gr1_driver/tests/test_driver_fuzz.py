"""Hypothesis fuzz: random malformed JointState commands at the node for a bounded time (<= 15 s).

Afterwards the node must still run and publish, everything the backend received must be finite,
inside the limits and step-bounded, and a valid command must still be tracked.
"""

import math
import time

import numpy as np
import pytest
from driver_testing import ACTUATED, DriverProcess, RosClient, read_record, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import JointState

from recipe_common import robot_spec
from recipe_gr1_driver.safety import SafetyLimits

FUZZ_SECONDS = 12.0
LIMITS = SafetyLimits.from_spec("fourier")
KNOWN = ACTUATED + robot_spec.hand_coupled_joint_names("fourier")
text = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=24)
value = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]))
name = st.one_of(st.sampled_from(KNOWN), text, st.sampled_from(KNOWN).map(lambda n: n.upper()))


@st.composite
def joint_state(draw):
    names = draw(st.lists(name, max_size=40))
    if draw(st.booleans()):  # lengths agree: exercises clamping of extreme but well-formed commands
        positions = draw(st.lists(value, min_size=len(names), max_size=len(names)))
    else:
        positions = draw(st.lists(value, max_size=40))
    msg = JointState()
    msg.header.frame_id = draw(text)
    msg.name = names
    msg.position = positions
    msg.velocity = draw(st.lists(value, max_size=5))
    msg.effort = draw(st.lists(value, max_size=5))
    return msg


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    driver = DriverProcess(tmp_path_factory.mktemp("fuzz"), twin="fake",
                           params={"camera_rate_hz": 0.0, "ramp_time": 0.2, "diagnostics_rate_hz": 4.0})
    client = RosClient("driver_fuzz_client")
    try:
        assert client.wait_for_state(20.0, driver) is not None, driver.output()
        yield driver, client, {"deadline": time.monotonic() + FUZZ_SECONDS, "sent": 0}
    finally:
        code = driver.stop()  # before the client leaves, so no reader vanishes under it
        client.close()
        assert code == 0, driver.output()


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(joint_state(), min_size=1, max_size=10))
def test_fuzz_commands(rig, batch):
    _driver, client, budget = rig
    if time.monotonic() > budget["deadline"]:
        return
    for msg in batch:
        client.cmd_pub.publish(msg)
        budget["sent"] += 1
    time.sleep(0.002)


def test_node_survived_and_stayed_safe(rig):
    driver, client, budget = rig
    assert budget["sent"] > 500, f"fuzz sent only {budget['sent']} messages"
    assert driver.alive(), driver.output()[-3000:]
    t0 = time.monotonic()
    time.sleep(1.0)
    assert len(client.states_since(t0)) >= 50, "JointState stream stalled after the fuzz"
    rec = read_record(driver.record)[:, 1:]
    assert len(rec) > 500
    assert np.all(np.isfinite(rec))
    assert np.all(rec >= LIMITS.lower - 1e-12) and np.all(rec <= LIMITS.upper + 1e-12)
    assert np.all(np.abs(np.diff(rec, axis=0)) <= LIMITS.max_step + 1e-12)
    assert wait_until(lambda: int(client.diag_value("rejected_commands") or 0) > 100, 2.0)
    # still obeys a valid command
    elbow = ACTUATED.index("left_elbow_pitch_joint")
    time.sleep(0.6)  # watchdog expiry: fresh source state
    client.stream(["left_elbow_pitch_joint"], [0.7], seconds=2.0)
    assert read_record(driver.record)[-1, 1 + elbow] == pytest.approx(0.7)
