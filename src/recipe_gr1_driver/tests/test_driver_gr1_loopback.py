"""The gr1 hardware backend against loopback fake peers: what the robot would receive, in its units.

Only 127.0.0.1 is used: a zenoh GRX server stand-in and two UDP DexHand stand-ins (driver_fake_peers).
"""

import ipaddress
import time

import numpy as np
import pytest
from driver_fake_peers import FakeDexHand, FakeGRXServer, wait_for
from driver_testing import DriverProcess, RosClient, free_port, position_of
from fourier_grx_client.constants import DEFAULT_POSITIONS

from recipe_common import robot_spec
from recipe_gr1_driver.backends.gr1 import GR1Backend

ARMS = robot_spec.arm_joint_names()
INITIAL_DEG = DEFAULT_POSITIONS.copy()  # legs bent, arms near zero (degrees, as the server speaks)
INITIAL_DEG[21] = 20.0  # left elbow pitch
READING = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # DexHand get_angle: index, middle, ring, little, thumb-1, thumb-2


@pytest.fixture()
def peers():
    port = free_port()
    server = FakeGRXServer(port, initial_deg=INITIAL_DEG)
    hands = (FakeDexHand(READING), FakeDexHand([0.0, 0.0, 0.0, 0.0, 10.3, 0.0]))
    yield port, server, hands
    for h in hands:
        h.close()
    server.close()


def _backend(port, hands, enable=True):
    kwargs = dict(server_ip="127.0.0.1", server_port=port, zenoh_listen=["tcp/127.0.0.1:0"],
                  hand_ips=("127.0.0.1", "127.0.0.1"), hand_ports=(hands[0].ports, hands[1].ports),
                  enable_on_start=enable, hand_poll_rate_hz=100.0)
    for ip in (kwargs["server_ip"], *kwargs["hand_ips"]):
        assert ipaddress.ip_address(ip).is_loopback
    return GR1Backend(**kwargs)


def test_backend_reads_and_writes_in_sdk_units(peers):
    port, server, hands = peers
    be = _backend(port, hands)
    be.start()
    try:
        assert wait_for(lambda: be.status().ok, 5.0), be.status()
        assert server.enable_requests == ["ON"]
        q, dq, tau = be.read_state()
        names = be.state_names
        # arms: degrees on the wire -> radians, GRX index 21 is the left elbow
        assert q[names.index("left_elbow_pitch_joint")] == pytest.approx(np.deg2rad(20.0))
        assert q[names.index("right_shoulder_roll_joint")] == pytest.approx(np.deg2rad(INITIAL_DEG[26]))
        assert dq[names.index("left_wrist_yaw_joint")] == pytest.approx(np.deg2rad(0.5))
        assert tau[names.index("right_wrist_pitch_joint")] == pytest.approx(31.0)  # effort index 31
        # left hand: SDK strokes (0 open .. 10.3 closed) -> radians; thumb-1 = pitch, thumb-2 = yaw
        assert q[names.index("L_index_proximal_joint")] == pytest.approx(-1.592 * 1.0 / 10.3)
        assert q[names.index("L_pinky_proximal_joint")] == pytest.approx(-1.592 * 4.0 / 10.3)
        assert q[names.index("L_thumb_proximal_pitch_joint")] == pytest.approx(1.143 * 5.0 / 10.3)
        assert q[names.index("L_thumb_proximal_yaw_joint")] == pytest.approx(-1.696 * 6.0 / 10.3)
        assert q[names.index("R_thumb_proximal_pitch_joint")] == pytest.approx(1.143)
        assert q[names.index("L_thumb_distal_joint")] == pytest.approx(1.06 * 1.143 * 5.0 / 10.3)

        target = np.zeros(26)
        target[:14] = np.linspace(-0.3, 0.3, 14)
        open_, closed = robot_spec.hand_open_closed("fourier")
        target[14:20] = open_ + 0.25 * (closed - open_)  # left hand a quarter closed
        target[20:26] = closed  # right hand closed
        n_before = len(server.received())
        be.write_targets(target)
        assert wait_for(lambda: len(server.received()) > n_before, 2.0)
        cmd = server.received()[-1]
        assert cmd.shape == (32,)
        np.testing.assert_allclose(cmd[18:32], np.rad2deg(target[:14]))  # arms, degrees, GRX order
        np.testing.assert_allclose(cmd[:18], INITIAL_DEG[:18])  # legs/waist/head held where measured
        assert wait_for(lambda: hands[0].set_angle_commands() and hands[1].set_angle_commands(), 2.0)
        np.testing.assert_allclose(hands[0].set_angle_commands()[-1], [0.25 * 10.3] * 6, rtol=1e-6)
        np.testing.assert_allclose(hands[1].set_angle_commands()[-1], [10.3] * 6, rtol=1e-6)
        with pytest.raises(ValueError, match="non-finite"):
            be.write_targets(np.full(26, np.nan))
    finally:
        be.stop()


def test_hand_poller_survives_garbled_replies(peers):
    port, server, hands = peers
    hands[0].raw_reply = b"b'garbage 1.0 x "
    be = _backend(port, hands, enable=False)
    be.start()
    try:
        assert wait_for(lambda: be.status().values["hand_read_errors"] != "0", 3.0)
        hands[0].raw_reply = None
        idx = be.state_names.index("L_index_proximal_joint")
        assert wait_for(lambda: abs(be.read_state()[0][idx] - (-1.592 / 10.3)) < 1e-9, 3.0)
        assert server.enable_requests == []  # gr1_enable_on_start false: no enable sent
    finally:
        be.stop()


def test_backend_without_server_fails_clearly():
    port = free_port()
    be = _backend(port, (FakeDexHand(), FakeDexHand()), enable=False)
    try:
        with pytest.raises(ConnectionError, match=rf"no GRX robot server answered at tcp/127\.0\.0\.1:{port} "
                                                  r"\(namespace 'gr'\).*gr1_server_ip / gr1_server_port"):
            be.start()
    finally:
        be.stop()


def test_backend_stop_is_quiet_and_idempotent(peers, capfd):
    """The SDK's close() ran twice (close, then __del__) and logged an AttributeError traceback."""
    port, _server, hands = peers
    be = _backend(port, hands, enable=False)
    be.start()
    assert wait_for(lambda: be.status().ok, 5.0), be.status()
    be.stop()
    be.stop()
    import gc

    gc.collect()  # the SDK client's __del__ runs close() once more
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "key_expr" not in out + err, out + err
    assert not be.status().values["connected"] == "True"


def test_tracked_session_closes_while_a_callback_runs(peers):
    """The shutdown deadlock's ingredients, made deterministic: zenoh's thread is inside a Python
    callback when the session is closed. close() waits (GIL released) until zenoh lets go of the
    callback and only then drops the session, so it returns once the callback returns."""
    import json
    import threading

    import zenoh

    from recipe_gr1_driver.backends.zenoh_session import TrackedSession

    port, _server, _hands = peers
    conf = zenoh.Config()
    conf.insert_json5("connect/endpoints", json.dumps([f"tcp/127.0.0.1:{port}"]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    session = TrackedSession.open(conf)
    entered, release, result = threading.Event(), threading.Event(), []

    def slow(sample) -> None:
        entered.set()
        release.wait(10.0)  # zenoh's rx thread sits in Python, as with the SDK's state callback

    session.declare_subscriber("gr/joint/position", slow)
    assert session.held_callables == 1
    assert entered.wait(5.0), "no joint state sample from the fake server"
    closer = threading.Thread(target=lambda: result.append(session.close()), daemon=True)
    closer.start()
    time.sleep(0.3)
    assert closer.is_alive() and not result  # waiting for the callback, not dropping the session under it
    release.set()
    closer.join(10.0)
    assert not closer.is_alive() and result == [True]
    assert session.held_callables == 0 and session.closed
    assert session.close() is True  # idempotent


def test_driver_node_to_fake_robot_end_to_end(peers, tmp_path):
    """Node in a subprocess -> safety -> gr1 backend -> zenoh/UDP -> fake peers here."""
    port, server, hands = peers
    params = {
        "gr1_server_ip": "127.0.0.1", "gr1_server_port": port, "gr1_zenoh_listen": ["tcp/127.0.0.1:0"],
        "left_hand_ip": "127.0.0.1", "right_hand_ip": "127.0.0.1",
        "left_hand_ports": list(hands[0].ports), "right_hand_ports": list(hands[1].ports),
        "ramp_time": 0.2, "watchdog_timeout": 1.0,
    }
    driver = DriverProcess(tmp_path, twin="none", params=params, backend="gr1")
    client = RosClient()
    try:
        state = client.wait_for_state(20.0, driver)
        assert state is not None, driver.output()
        assert position_of(state, "left_elbow_pitch_joint") == pytest.approx(np.deg2rad(20.0), abs=1e-6)
        names = ["left_elbow_pitch_joint", "R_index_proximal_joint"]
        client.stream(names, [0.8, -1.592 / 2], seconds=1.5)
        cmd = server.received()[-1]
        assert cmd[21] == pytest.approx(np.rad2deg(0.8), abs=1e-6)  # tracked, in degrees, index 21
        assert cmd[25] == pytest.approx(INITIAL_DEG[25], abs=1e-6)  # right shoulder untouched
        right = hands[1].set_angle_commands()[-1]
        assert right[0] == pytest.approx(10.3 / 2, rel=1e-5)  # index slot, half closed
        # state comes back from the fake server's echo of the command
        def elbow_state() -> float:
            return position_of(client.latest_state(), "left_elbow_pitch_joint")

        assert wait_for(lambda: abs(elbow_state() - 0.8) < 1e-6)
        # a command outside the limits reaches the robot clamped to limit - margin (2.27 - 0.05 rad)
        client.stream(["left_elbow_pitch_joint"], [3.5], seconds=1.0)
        sent = np.array([c[21] for c in server.received()])
        assert sent.max() == pytest.approx(np.rad2deg(2.22), abs=1e-6)
        time.sleep(0.1)
        assert driver.alive()
    finally:
        code = driver.stop()  # before the client leaves, so no reader vanishes under it
        client.close()
    assert code == 0, driver.output()
