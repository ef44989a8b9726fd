"""Loopback stand-ins for the GR1 hardware: a GRX zenoh server and Fourier DexHand UDP endpoints.

They speak the wire formats the SDKs use (read from fourier_grx_client and fourier_dhx sources)
and record what they receive. Everything binds to 127.0.0.1; zenoh scouting is disabled so no
multicast leaves the host.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import msgpack
import msgpack_numpy
import numpy as np
import zenoh

from recipe_gr1_driver.backends.zenoh_session import TrackedSession

msgpack_numpy.patch()

LOOPBACK = "127.0.0.1"


class FakeGRXServer:
    """Answers robot/info, control/enable and control/gains; publishes joint state in degrees.

    The state follows the last position command exactly (a perfectly tracking robot), starting
    from ``initial_deg``, so reads can be checked against writes.
    """

    def __init__(self, port: int, namespace: str = "gr", initial_deg: np.ndarray | None = None,
                 rate_hz: float = 100.0) -> None:
        conf = zenoh.Config()
        conf.insert_json5("mode", json.dumps("peer"))
        conf.insert_json5("listen/endpoints", json.dumps([f"tcp/{LOOPBACK}:{port}"]))
        conf.insert_json5("scouting/multicast/enabled", "false")
        conf.insert_json5("scouting/gossip/enabled", "false")
        self.ns = namespace
        self.session = TrackedSession.open(conf)  # closes without the zenoh/GIL shutdown deadlock
        start = initial_deg if initial_deg is not None else np.zeros(32)
        self.position_deg = np.array(start, dtype=np.float64)
        self.commands: list[np.ndarray] = []
        self.enable_requests: list[str] = []
        self._lock = threading.Lock()
        self._queryables = [
            self.session.declare_queryable(f"{namespace}/robot/info", self._on_info),
            self.session.declare_queryable(f"{namespace}/control/enable", self._on_enable),
        ]
        self._sub = self.session.declare_subscriber(f"{namespace}/control/joints/position", self._on_position)
        self._stop = threading.Event()
        self._period = 1.0 / rate_hz
        self._thread = threading.Thread(target=self._publish_state, daemon=True)
        self._thread.start()

    def _reply(self, query, value) -> None:
        query.reply(zenoh.Sample(str(query.key_expr), msgpack.packb(value)))

    def _on_info(self, query) -> None:
        self._reply(query, {"robot": "fake-gr1", "joints": 32})

    def _on_enable(self, query) -> None:
        payload = query.value.payload if query.value is not None else b""
        with self._lock:
            self.enable_requests.append(msgpack.unpackb(payload) if payload else "")
        self._reply(query, "OK")

    def _on_position(self, sample) -> None:
        cmd = np.asarray(msgpack.unpackb(sample.payload), dtype=np.float64)
        with self._lock:
            self.commands.append(cmd)
            if cmd.shape == (32,):
                self.position_deg = cmd.copy()

    def _publish_state(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pos = self.position_deg.copy()
            self.session.put(f"{self.ns}/joint/position", msgpack.packb(pos.tolist()))
            self.session.put(f"{self.ns}/joint/velocity", msgpack.packb([0.5] * 32))
            self.session.put(f"{self.ns}/joint/effort", msgpack.packb(list(np.arange(32.0))))
            self._stop.wait(self._period)

    def received(self) -> list[np.ndarray]:
        with self._lock:
            return list(self.commands)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.session.close()  # undeclares the queryables and the subscriber first


class FakeDexHand:
    """Records set_angle packets on the control port and answers get_angle on the query port."""

    SET_ANGLE = struct.Struct(">BBBBffffff")

    def __init__(self, reading: list[float] | None = None) -> None:
        self.ctrl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ctrl.bind((LOOPBACK, 0))
        self.comm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.comm.bind((LOOPBACK, 0))
        self.ports = (self.ctrl.getsockname()[1], self.comm.getsockname()[1])
        self.reading = list(reading or [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        self.packets: list[bytes] = []
        self.queries = 0
        self.raw_reply: bytes | None = None  # set to answer get_angle with arbitrary bytes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for s in (self.ctrl, self.comm):
            s.settimeout(0.05)
        self._threads = [threading.Thread(target=self._serve_ctrl, daemon=True),
                         threading.Thread(target=self._serve_comm, daemon=True)]
        for t in self._threads:
            t.start()

    def _serve_ctrl(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.ctrl.recvfrom(1024)
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.packets.append(data)

    def _serve_comm(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.comm.recvfrom(1024)
            except (TimeoutError, OSError):
                continue
            if data == b"\x02":  # get_angle: the SDK parses space-separated ASCII floats
                with self._lock:
                    self.queries += 1
                    reply = self.raw_reply if self.raw_reply is not None else \
                        "".join(f"{v} " for v in self.reading).encode()
                self.comm.sendto(reply, addr)

    def set_angle_commands(self) -> list[list[float]]:
        """Decoded DexHand.set_angle(0, [...]) packets (header 0x01 0x11 0x00 0x00)."""
        out = []
        with self._lock:
            packets = list(self.packets)
        for p in packets:
            if len(p) == self.SET_ANGLE.size:
                head = self.SET_ANGLE.unpack(p)
                if head[:4] == (0x01, 0x11, 0x00, 0x00):
                    out.append(list(head[4:]))
        return out

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)
        self.ctrl.close()
        self.comm.close()


def wait_for(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())
