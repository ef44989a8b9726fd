"""GR1 hardware backend: arms through fourier-grx-client (zenoh), hands through fourier-dhx (UDP).

Orders and units are converted only in gr1_mapping. Notes on the SDKs that shaped this code:

* ``RobotClient(namespace, server_ip)`` always connects to ``tcp/<ip>:7447``. A subclass rewrites
  the zenoh endpoint (any port: the loopback fake peer in the tests) through the client's own
  session base class, so the SDK's code paths stay the ones used on the robot, and replaces its
  close(), which could deadlock the process on shutdown (zenoh_session.py explains why).
* ``move_joints(indices, positions_deg, duration=0, degrees=True)`` publishes one full 32-vector in
  degrees at once: the named arm joints get our targets, every other joint its measured position
  (legs, waist and head are re-commanded where they are, as every SDK call does).
* DexHand ``get_angle()`` is a blocking UDP round trip (0.1 s timeout), so the hands are polled
  in a background thread and read_state() returns the latest reading; hand velocity is a finite
  difference of those readings, hand effort is reported as 0 (no sensor).
* Arm effort comes from ``<ns>/joint/effort`` if the server publishes it, else 0.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from recipe_common import robot_spec
from recipe_gr1_driver.backends import gr1_mapping as gm
from recipe_gr1_driver.backends.base import Backend, BackendStatus
from recipe_gr1_driver.backends.zenoh_session import TrackedSession

N_ARM = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
N_HAND = robot_spec.NUM_HAND_ACTUATED_PER_SIDE


def make_robot_client(namespace: str, server_ip: str, server_port: int = 7447,
                      listen: list[str] | None = None) -> Any:
    """A fourier_grx_client.RobotClient on ``tcp/<server_ip>:<server_port>`` that closes without hanging.

    The SDK's own close() can deadlock the process (see zenoh_session); this subclass keeps the SDK's
    code paths (states, move_joints, enable) but opens its zenoh session through TrackedSession and
    closes it in the safe order. A missing server is a ConnectionError naming the endpoint.
    """
    from fourier_grx_client import RobotClient
    from fourier_grx_client.exceptions import FourierConnectionError
    from fourier_grx_client.zenoh_utils import ZenohSession

    connect = f"tcp/{server_ip}:{server_port}"

    class _TrackedEndpointSession(ZenohSession):
        # RobotClient.__init__ calls super().__init__(namespace, conf); in the MRO below that lands
        # here first, so only the endpoints and the session wrapper change.
        def __init__(self, prefix: str, config: Any = None) -> None:
            config.insert_json5("connect/endpoints", json.dumps([connect]))
            if listen:
                config.insert_json5("listen/endpoints", json.dumps(list(listen)))
            super().__init__(prefix, config)
            self.session = TrackedSession(self.session)

    class _Client(RobotClient, _TrackedEndpointSession):
        def __init__(self) -> None:
            try:
                RobotClient.__init__(self, namespace=namespace, server_ip=server_ip)
            except FourierConnectionError:
                self.server_connected = False
                self.close()
                raise ConnectionError(
                    f"no GRX robot server answered at {connect} (namespace {namespace!r}); check that the "
                    f"robot server runs and that gr1_server_ip / gr1_server_port point to it") from None

        def close(self) -> None:
            """Hold the measured pose (the SDK's abort), then close the session in the safe order."""
            session = getattr(self, "session", None)
            if session is None:
                return
            if getattr(self, "server_connected", False):
                self.server_connected = False
                try:
                    self.abort()  # re-commands the measured positions: the arms stay where they are
                    time.sleep(0.1)  # let that command leave before the publisher is undeclared
                except Exception:
                    pass
            self._subscribers, self._publishers, self._services = {}, {}, {}
            self.session = None  # the SDK's __del__ -> close() now finds nothing to do
            session.close()

    return _Client()


def make_dexhand(ip: str, ctrl_port: int, comm_port: int) -> Any:
    from fourier_dhx.sdk.DexHand import DexHand

    hand = DexHand(ip)
    hand.ctrl_port, hand.comm_port = int(ctrl_port), int(comm_port)  # Hand attributes, default 2333/2334
    return hand


class GR1Backend(Backend):
    name = "gr1"

    def __init__(
        self,
        namespace: str = "gr",
        server_ip: str = "192.168.6.6",
        server_port: int = 7447,
        zenoh_listen: list[str] | None = None,
        hand_ips: tuple[str, str] = ("192.168.137.19", "192.168.137.39"),
        hand_ports: tuple[tuple[int, int], tuple[int, int]] = ((2333, 2334), (2333, 2334)),
        enable_on_start: bool = False,
        full_stroke: float = gm.DEXHAND_FULL_STROKE,
        hand_poll_rate_hz: float = 50.0,
        client_factory: Callable[..., Any] = make_robot_client,
        hand_factory: Callable[..., Any] = make_dexhand,
    ) -> None:
        super().__init__("fourier")
        self._client_args = (namespace, server_ip, server_port, zenoh_listen)
        self._hand_args = [(hand_ips[i], *hand_ports[i]) for i in range(2)]
        self._enable = enable_on_start
        self._stroke = full_stroke
        self._poll_period = 1.0 / hand_poll_rate_hz
        self._client_factory = client_factory
        self._hand_factory = hand_factory
        self._client: Any = None
        self._hands: list[Any] = []
        self._hand_q = np.full(2 * N_HAND, np.nan)
        self._hand_dq = np.zeros(2 * N_HAND)
        self._hand_stamp = [0.0, 0.0]
        self._hand_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.error = ""

    def start(self) -> None:
        if self._client is not None:
            return
        namespace, ip, port, listen = self._client_args
        self._client = self._client_factory(namespace, ip, port, listen)
        if self._enable:
            self._client.enable()
        self._hands = [self._hand_factory(*args) for args in self._hand_args]
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_hands, name="dexhand-poll", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2.0)
            self._poller = None
        client, self._client = self._client, None
        if client is not None:
            client.close()
        for hand in self._hands:
            sock = getattr(getattr(hand, "s", None), "s", None)
            if sock is not None:
                sock.close()
        self._hands = []

    def _poll_hands(self) -> None:
        while not self._stop.is_set():
            for side, hand in enumerate(self._hands):
                try:  # a timeout or a garbled reply must not end the poller
                    q = gm.dexhand_to_hand_rad(hand.get_angle(), "fourier", self._stroke)
                except Exception:
                    self._hand_errors += 1
                    continue
                now = time.monotonic()
                sl = slice(side * N_HAND, (side + 1) * N_HAND)
                with self._lock:
                    prev, dt = self._hand_q[sl].copy(), now - self._hand_stamp[side]
                    self._hand_dq[sl] = (q - prev) / dt if np.all(np.isfinite(prev)) and dt > 0 else 0.0
                    self._hand_q[sl] = q
                    self._hand_stamp[side] = now
            self._stop.wait(self._poll_period)

    def _joint_sensor(self, key: str) -> np.ndarray | None:
        reading = self._client.states["joint"].get(key) if self._client is not None else None
        if reading is None:
            return None
        v = np.asarray(reading, dtype=np.float64).reshape(-1)
        return v if v.shape == (gm.GRX_NUM_JOINTS,) else None

    def read_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos, vel, eff = (self._joint_sensor(k) for k in ("position", "velocity", "effort"))
        arm_q = gm.grx_deg_to_arm_rad(pos) if pos is not None else np.full(N_ARM, np.nan)
        arm_dq = gm.grx_deg_to_arm_rad(vel) if vel is not None else np.zeros(N_ARM)
        arm_tau = eff[gm.GRX_ARM_INDICES] if eff is not None else np.zeros(N_ARM)
        with self._lock:
            hand_q, hand_dq = self._hand_q.copy(), self._hand_dq.copy()
        q = np.concatenate([arm_q, hand_q, gm.coupled_from_actuated(hand_q)])
        dq = np.concatenate([arm_dq, hand_dq, gm.coupled_from_actuated(hand_dq, offset=False)])
        tau = np.concatenate([arm_tau, np.zeros(len(self.state_names) - N_ARM)])
        return q, dq, tau

    def write_targets(self, q: np.ndarray) -> None:
        q = self.check_targets(q)
        if self._client is None:
            raise RuntimeError("gr1 backend not started")
        if self._joint_sensor("position") is None:
            # move_joints fills the other 18 joints from the measured state; without it there is
            # nothing safe to send.
            self.error = "no joint state from the GRX server yet; arm targets not sent"
            return
        indices, degrees = gm.arm_rad_to_grx_deg(q[:N_ARM])
        self._client.move_joints(indices, degrees, duration=0.0, degrees=True)
        for side, hand in enumerate(self._hands):
            qh = q[N_ARM + side * N_HAND: N_ARM + (side + 1) * N_HAND]
            hand.set_angle(0, gm.hand_rad_to_dexhand(qh, "fourier", self._stroke))
        self.error = ""

    def status(self) -> BackendStatus:
        connected = self._client is not None
        has_state = self._joint_sensor("position") is not None
        hands_ok = all(np.isfinite(self._hand_q))
        ok = connected and has_state and hands_ok and not self.error
        msg = self.error or ("ok" if ok else "waiting for arm and hand state")
        return BackendStatus(ok, msg, {"connected": str(connected), "arm_state": str(has_state),
                                       "hand_state": str(hands_ok),
                                       "hand_read_errors": str(self._hand_errors)})
