"""Record the robot live through the driver topics (rclpy helper; the only ROS code the library has).

Publishes calibration targets (sensor_msgs/JointState, radians, actuated names) on /joint_commands at the
command rate and keeps every /joint_states message with its header stamp (the driver's clock; the receive
time where the stamp is empty); after each sequence the states are interpolated at the command stamps (the
same alignment as the bag reader), so a late callback never shifts a sample. Before each sequence the
robot is ramped from where it is to the sequence start.

Cancel is safe by construction: ``should_stop()`` is checked every tick; on stop no further calibration
target is published, the current measured pose is commanded (hold), and then a slow raised-cosine ramp
brings the robot home. When ``shutting_down()`` is true as well (SIGINT/SIGTERM), the robot is only held
where it is (one hold command; the driver's watchdog keeps holding), so the process can exit at once.
With a ClearanceChecker every move outside the calibration sequences (the approach to the first target,
the way home) is checked against the table and body first; the approach goes through
``calibration.approach_waypoints`` when the straight move is not clear (e.g. from arms hanging by the
table to the raised home pose).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from recipe_common import robot_spec
from recipe_common.ros.stamps import stamp_s

from .calibration import ramp
from .clearance import ClearanceChecker, approach_path
from .recording import COMMAND_TOPIC, STATE_TOPIC, Recording, RecordingError


class LiveRecordingError(RuntimeError):
    """The driver did not answer (no /joint_states) or stopped answering during a sequence."""


class LiveRecorder:
    """Plays target sequences on the robot and records its tracking. Needs a spinning executor."""

    def __init__(
        self,
        node,
        hand: str = robot_spec.DEFAULT_HAND,
        rate_hz: float = 10.0,
        command_topic: str = COMMAND_TOPIC,
        state_topic: str = STATE_TOPIC,
        callback_group=None,
        clearance: ClearanceChecker | None = None,
        approach_waypoints: Sequence[Mapping[str, float]] = (),
    ) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState

        self._JointState = JointState
        self.clearance = clearance
        self.returned_home = False  # after a stopped record(): went home (True) or holding (False)
        self.approach_waypoints = list(approach_waypoints)
        self.node = node
        self.hand = hand
        self.rate_hz = float(rate_hz)
        self.actuated = robot_spec.actuated_joint_names()
        self.state_names = robot_spec.state_joint_names(hand)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = node.create_publisher(JointState, command_topic, qos)
        self._sub = node.create_subscription(
            JointState, state_topic, self._on_state, qos, callback_group=callback_group
        )
        self._lock = threading.Lock()
        self._log: list[tuple[float, np.ndarray]] = []
        self._latest: tuple[float, np.ndarray] | None = None
        self._index_cache: tuple[tuple[str, ...], list[int]] | None = None

    # ---- state input ----
    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_state(self, msg) -> None:
        stamp = stamp_s(msg.header.stamp)
        if stamp <= 0:
            stamp = self._now()
        names = tuple(msg.name)
        if self._index_cache is None or self._index_cache[0] != names:
            lookup = {n: i for i, n in enumerate(names)}
            if any(n not in lookup for n in self.state_names) or len(msg.position) != len(names):
                return  # not a full arm+hand state: ignore (the driver always sends all joints)
            self._index_cache = (names, [lookup[n] for n in self.state_names])
        q = np.asarray(msg.position, dtype=np.float64)[self._index_cache[1]]
        if not np.all(np.isfinite(q)):
            return
        with self._lock:
            self._latest = (stamp, q)
            self._log.append((stamp, q))

    def latest_state(self) -> np.ndarray | None:
        with self._lock:
            return None if self._latest is None else self._latest[1].copy()

    def wait_for_state(
        self, timeout: float = 5.0, should_stop: Callable[[], bool] = lambda: False
    ) -> np.ndarray | None:
        """The latest full joint state, waiting up to ``timeout`` s for one; None if stopped meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            q = self.latest_state()
            if q is not None:
                return q
            if should_stop():
                return None
            time.sleep(0.02)
        raise LiveRecordingError(
            f"no full {STATE_TOPIC} message within {timeout:.1f} s: is the driver running?"
        )

    # ---- command output ----
    def publish(self, q26: np.ndarray) -> float:
        now = self.node.get_clock().now()
        msg = self._JointState()
        msg.header.stamp = now.to_msg()
        msg.name = list(self.actuated)
        msg.position = [float(v) for v in q26]
        self._pub.publish(msg)
        return now.nanoseconds * 1e-9

    def _play(self, rows: np.ndarray, should_stop: Callable[[], bool]) -> tuple[list[float], bool]:
        """Publish rows at the command rate; returns publish times and whether it was stopped."""
        period = 1.0 / self.rate_hz
        stamps: list[float] = []
        next_tick = time.monotonic()
        for row in rows:
            if should_stop():
                return stamps, True
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamps.append(self.publish(row))
            # after a late tick do not burst to catch up: keep at least half a period between commands
            next_tick = max(next_tick + period, time.monotonic() + 0.5 * period)
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return stamps, False

    def _states_at(self, cmd_t: np.ndarray, timeout: float) -> np.ndarray:
        """Joint states interpolated at the command stamps (waits briefly for the last ones to arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                log = [entry for entry in self._log if entry[0] >= cmd_t[0] - 1.0]
            if log and log[-1][0] >= cmd_t[-1]:
                break
            if time.monotonic() > deadline:
                raise LiveRecordingError(
                    f"{STATE_TOPIC} stopped during the sequence (last state "
                    f"{log[-1][0] - cmd_t[-1] if log else float('nan'):+.3f} s from the "
                    "last command)"
                )
            time.sleep(0.01)
        with self._lock:
            self._log = [entry for entry in self._log if entry[0] >= cmd_t[-1] - 1.0]  # bound memory
        st_t = np.array([t for t, _ in log])
        order = np.argsort(st_t, kind="stable")
        st_t = st_t[order]
        st_q = np.stack([log[i][1] for i in order])
        if st_t[0] > cmd_t[0] + 0.5 / self.rate_hz:
            raise LiveRecordingError(
                f"no {STATE_TOPIC} near the start of the sequence "
                f"(first {st_t[0] - cmd_t[0]:+.3f} s after it)"
            )
        return np.stack([np.interp(cmd_t, st_t, st_q[:, j]) for j in range(st_q.shape[1])], axis=-1)

    def hold(self, fallback: np.ndarray) -> np.ndarray:
        """Command the current measured pose (``fallback`` if none was received yet); returns it."""
        q = self.latest_state()
        current = q[: robot_spec.ACTION_DIM] if q is not None else np.asarray(fallback, dtype=np.float64)
        self.publish(current)
        return current

    def safe_stop(
        self,
        home: np.ndarray,
        max_velocity: float,
        hold_s: float = 0.3,
        abort: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Hold the current measured pose, then ramp slowly home (no calibration target is sent again).

        Returns False (and keeps holding) if the straight way home is not clear of the table and body, or
        if ``abort()`` turns true on the way (the robot then holds where it is).
        """
        current = self.hold(home)
        hold = np.repeat(current[None], max(1, round(hold_s * self.rate_hz)), axis=0)
        if self._play(hold, abort)[1]:
            self.hold(current)
            return False
        path = ramp(current, home, max_velocity, self.rate_hz)
        if self.clearance is not None:
            # the robot is already near a cleared pose (it lags its targets a little): the way back must
            # keep half the planning margin, not all of it
            close = [c for c in self.clearance.contacts(path) if c.distance < 0.5 * self.clearance.margin]
            if close:
                self.node.get_logger().error(
                    f"cancelled: holding the current pose, the way home brings {close[0].body1} within "
                    f"{close[0].distance:.3f} m of {close[0].body2}"
                )
                return False
        if self._play(path, abort)[1]:
            self.hold(current)
            return False
        return True

    def _stop(self, home: np.ndarray, max_velocity: float, shutting_down: Callable[[], bool]) -> None:
        if shutting_down():
            self.hold(home)
            self.returned_home = False
        else:
            self.returned_home = self.safe_stop(home, max_velocity, abort=shutting_down)

    def record(
        self,
        targets: np.ndarray,
        home: np.ndarray,
        *,
        max_velocity: float = 0.3,
        should_stop: Callable[[], bool] = lambda: False,
        shutting_down: Callable[[], bool] = lambda: False,
        on_sequence: Callable[[int, int], None] | None = None,
        state_timeout: float = 5.0,
    ) -> Recording | None:
        """Play (N, T, 26) targets and return the Recording, or None after a safe stop on cancel.

        After a stop, ``returned_home`` says whether the robot went home or holds where it stopped.
        """
        self.returned_home = False
        targets = np.asarray(targets, dtype=np.float64)
        if targets.ndim != 3 or targets.shape[2] != robot_spec.ACTION_DIM:
            raise RecordingError(f"targets must be (N, T, {robot_spec.ACTION_DIM}), got {targets.shape}")
        n, t, _ = targets.shape
        measured = np.empty((n, t, len(self.state_names)))
        times = np.empty((n, t))
        for k in range(n):
            state = self.wait_for_state(state_timeout, should_stop)
            if state is None:
                self._stop(home, max_velocity, shutting_down)
                return None
            start = state[: robot_spec.ACTION_DIM]
            try:
                approach = approach_path(
                    start, targets[k, 0], self.clearance, self.approach_waypoints, max_velocity, self.rate_hz
                )
            except RuntimeError as exc:
                raise LiveRecordingError(str(exc)) from None
            _, stopped = self._play(approach, should_stop)
            if not stopped:
                _, stopped = self._play(
                    np.repeat(targets[k, :1], round(0.5 * self.rate_hz), axis=0), should_stop
                )
            if stopped:
                self._stop(home, max_velocity, shutting_down)
                return None
            stamps, stopped = self._play(targets[k], should_stop)
            if stopped:
                self._stop(home, max_velocity, shutting_down)
                return None
            cmd_t = np.asarray(stamps)
            measured[k] = self._states_at(cmd_t, state_timeout)
            times[k] = cmd_t - cmd_t[0]
            if on_sequence:
                on_sequence(k + 1, n)
        if self._play(ramp(targets[-1, -1], home, max_velocity, self.rate_hz), shutting_down)[1]:
            self.hold(home)
        return Recording(targets, measured, times, self.hand)

    def record_design(
        self, train: np.ndarray, heldout: np.ndarray, home: np.ndarray, **kwargs
    ) -> Recording | None:
        """record() the training then the held-out sequences; the held-out ones marked in the Recording."""
        rec = self.record(np.concatenate([train, heldout]), home, **kwargs)
        if rec is None:
            return None
        held = tuple(range(len(train), len(train) + len(heldout)))
        return Recording(rec.targets, rec.measured, rec.times, rec.hand, held)
