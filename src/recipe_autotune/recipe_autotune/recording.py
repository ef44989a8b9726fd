"""One recording of the robot tracking the calibration sequences, and its .npz / rosbag2 MCAP readers.

Convention (shared with tracking.py): ``targets[n, i]`` is commanded at ``times[n, i]`` and held until the
next sample; ``measured[n, i]`` is the joint state at ``times[n, i]`` (just before ``targets[n, i]`` takes
effect). So ``measured[n, 0]`` is the initial state and ``measured[n, i + 1]`` the response to
``targets[n, : i + 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recipe_common import robot_spec
from recipe_common.ros.stamps import stamp_ns

RECORDING_FORMAT = "recipe_autotune/recording/v1"
COMMAND_TOPIC = "/joint_commands"
STATE_TOPIC = "/joint_states"


class RecordingError(ValueError):
    """A recording (in memory, .npz or bag) is malformed; the message names the problem."""


@dataclass(frozen=True)
class Recording:
    targets: np.ndarray  # (N, T, 26) radians, robot_spec.actuated_joint_names() order
    measured: np.ndarray  # (N, T, J) radians, robot_spec.state_joint_names(hand) order
    times: np.ndarray  # (N, T) command times from each sequence's start (need not be uniform: replayed as is)
    hand: str = robot_spec.DEFAULT_HAND
    heldout: tuple[int, ...] = ()  # sequences recorded for validation only (never fitted); () = not marked

    def __post_init__(self) -> None:
        if self.hand not in robot_spec.HANDS:
            raise RecordingError(f"hand {self.hand!r} is not one of {sorted(robot_spec.HANDS)}")
        targets = np.asarray(self.targets, dtype=np.float64)
        measured = np.asarray(self.measured, dtype=np.float64)
        times = np.asarray(self.times, dtype=np.float64)
        n_state = len(robot_spec.state_joint_names(self.hand))
        if targets.ndim != 3 or targets.shape[2] != robot_spec.ACTION_DIM:
            raise RecordingError(
                f"targets must have shape (N, T, {robot_spec.ACTION_DIM}), got {targets.shape}"
            )
        n, t = targets.shape[:2]
        if n < 1 or t < 2:
            raise RecordingError(f"targets need at least 1 sequence of 2 samples, got shape {targets.shape}")
        if measured.shape != (n, t, n_state):
            raise RecordingError(
                f"measured must have shape ({n}, {t}, {n_state}) for the {self.hand!r} hand, "
                f"got {measured.shape}"
            )
        if times.shape != (n, t):
            raise RecordingError(f"times must have shape ({n}, {t}), got {times.shape}")
        for name, arr in (("targets", targets), ("measured", measured), ("times", times)):
            if not np.all(np.isfinite(arr)):
                bad = np.argwhere(~np.isfinite(arr))[0]
                raise RecordingError(
                    f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})"
                )
        if np.any(np.diff(times, axis=1) <= 0):
            raise RecordingError("times must be strictly increasing within every sequence")
        heldout = tuple(sorted({int(i) for i in self.heldout}))
        if any(not 0 <= i < n for i in heldout):
            raise RecordingError(f"heldout {list(heldout)}: must name sequences in [0, {n - 1}]")
        object.__setattr__(self, "heldout", heldout)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "measured", measured)
        object.__setattr__(self, "times", times)

    # ---- shape helpers ----
    @property
    def num_sequences(self) -> int:
        return int(self.targets.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.targets.shape[1])

    @property
    def period(self) -> float:
        return float(np.median(np.diff(self.times, axis=1)))

    @property
    def joint_names(self) -> list[str]:
        return robot_spec.state_joint_names(self.hand)

    def subset(self, sequences: Sequence[int]) -> Recording:
        """The given sequences, in that order; held-out marks follow their sequences."""
        idx = list(sequences)
        held = tuple(k for k, i in enumerate(idx) if i in self.heldout)
        return Recording(self.targets[idx], self.measured[idx], self.times[idx], self.hand, held)

    def split(self, default_heldout: int = 1) -> tuple[list[int], list[int]]:
        """(training, held-out) sequence indices.

        Marked held-out sequences when the recording has them (recorded by autotune); otherwise (a bag,
        an older file) the last ``default_heldout`` sequences, if at least one sequence remains to fit.
        """
        held = list(self.heldout)
        if not held and 0 < default_heldout < self.num_sequences:
            held = list(range(self.num_sequences - default_heldout, self.num_sequences))
        return [i for i in range(self.num_sequences) if i not in held], held

    @classmethod
    def combine(cls, train: Recording, heldout: Recording | None) -> Recording:
        """One recording of the training sequences followed by the held-out ones (marked)."""
        if heldout is None or heldout.num_sequences == 0:
            return train
        return cls(
            np.concatenate([train.targets, heldout.targets]),
            np.concatenate([train.measured, heldout.measured]),
            np.concatenate([train.times, heldout.times]),
            train.hand,
            tuple(range(train.num_sequences, train.num_sequences + heldout.num_sequences)),
        )

    # ---- .npz ----
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                format=np.array(RECORDING_FORMAT),
                hand=np.array(self.hand),
                joint_names=np.array(self.joint_names),
                actuated_names=np.array(robot_spec.actuated_joint_names()),
                targets=self.targets,
                measured=self.measured,
                times=self.times,
                heldout=np.asarray(self.heldout, dtype=np.int64),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        path = Path(path)
        if not path.is_file():
            raise RecordingError(f"recording {path} does not exist")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # zipfile/pickle/ValueError: all mean "not our npz"
            raise RecordingError(f"{path}: not a readable .npz file ({exc})") from None
        with data:
            missing = [
                k
                for k in ("format", "hand", "joint_names", "targets", "measured", "times")
                if k not in data.files
            ]
            if missing:
                raise RecordingError(f"{path}: missing array(s) {missing}")
            fmt = str(data["format"])
            if fmt != RECORDING_FORMAT:
                raise RecordingError(f"{path}: format {fmt!r}, expected {RECORDING_FORMAT!r}")
            hand = str(data["hand"])
            names = [str(s) for s in data["joint_names"]]
            if hand in robot_spec.HANDS and names != robot_spec.state_joint_names(hand):
                raise RecordingError(
                    f"{path}: joint_names differ from robot_spec.state_joint_names({hand!r})"
                )
            heldout = tuple(int(i) for i in data["heldout"]) if "heldout" in data.files else ()
            try:
                return cls(data["targets"], data["measured"], data["times"], hand, heldout)
            except RecordingError as exc:
                raise RecordingError(f"{path}: {exc}") from None


def load_recording(path: str | Path, hand: str = robot_spec.DEFAULT_HAND) -> Recording:
    """An .npz written by Recording.save, or a rosbag2 directory / .mcap file."""
    path = Path(path)
    if path.suffix == ".npz":
        return Recording.load(path)
    if path.is_dir() or path.suffix == ".mcap":
        return read_bag(path, hand=hand)
    raise RecordingError(f"{path}: expected an .npz recording or a rosbag2 MCAP directory")


# ---- rosbag2 ----
def _stamp(msg: object, log_time_ns: int) -> float:
    header = getattr(msg, "header", None)
    if header is not None:
        ns = stamp_ns(header.stamp)
        if ns > 0:
            return ns * 1e-9
    return log_time_ns * 1e-9


def _read_joint_state_topics(path: Path) -> tuple[list[tuple[float, list[str], np.ndarray]], ...]:
    try:
        from rosbags.highlevel import AnyReader
    except ImportError as exc:  # pragma: no cover - rosbags is a declared dependency
        raise RecordingError(f"reading bags needs the 'rosbags' package: {exc}") from None
    bag_dir = path.parent if path.suffix == ".mcap" else path
    if not (bag_dir / "metadata.yaml").is_file():
        raise RecordingError(f"{bag_dir}: not a rosbag2 directory (no metadata.yaml)")
    commands: list[tuple[float, list[str], np.ndarray]] = []
    states: list[tuple[float, list[str], np.ndarray]] = []
    try:
        with AnyReader([bag_dir]) as reader:
            topics = {c.topic: c for c in reader.connections}
            for topic in (COMMAND_TOPIC, STATE_TOPIC):
                if topic not in topics:
                    raise RecordingError(f"{bag_dir}: bag has no {topic} topic (topics: {sorted(topics)})")
                if topics[topic].msgtype != "sensor_msgs/msg/JointState":
                    raise RecordingError(
                        f"{bag_dir}: {topic} has type {topics[topic].msgtype}, "
                        "expected sensor_msgs/msg/JointState"
                    )
            wanted = [c for c in reader.connections if c.topic in (COMMAND_TOPIC, STATE_TOPIC)]
            for conn, log_time, raw in reader.messages(connections=wanted):
                msg = reader.deserialize(raw, conn.msgtype)
                entry = (_stamp(msg, log_time), list(msg.name), np.asarray(msg.position, dtype=np.float64))
                (commands if conn.topic == COMMAND_TOPIC else states).append(entry)
    except RecordingError:
        raise
    except Exception as exc:
        raise RecordingError(f"{bag_dir}: cannot read bag ({type(exc).__name__}: {exc})") from None
    return commands, states


def _full_commands(commands: list[tuple[float, list[str], np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Command times and (M, 26) targets; partial commands keep the last value of unnamed joints."""
    order = {n: i for i, n in enumerate(robot_spec.actuated_joint_names())}
    current = np.full(robot_spec.ACTION_DIM, np.nan)
    times, rows = [], []
    for stamp, names, pos in sorted(commands, key=lambda c: c[0]):
        if len(names) != len(pos):
            raise RecordingError(
                f"{COMMAND_TOPIC} message at t={stamp:.3f} has {len(names)} names and {len(pos)} positions"
            )
        for n, p in zip(names, pos, strict=True):
            if n not in order:
                raise RecordingError(f"{COMMAND_TOPIC} names unknown joint {n!r}")
            current[order[n]] = p
        if np.isnan(current).any():
            continue  # not all joints commanded yet
        times.append(stamp)
        rows.append(current.copy())
    if not rows:
        raise RecordingError(f"{COMMAND_TOPIC}: no message (or run of partial messages) names all 26 joints")
    return np.asarray(times), np.asarray(rows)


def _state_matrix(
    states: list[tuple[float, list[str], np.ndarray]], hand: str
) -> tuple[np.ndarray, np.ndarray]:
    names = robot_spec.state_joint_names(hand)
    if not states:
        raise RecordingError(f"{STATE_TOPIC}: no messages")
    states = sorted(states, key=lambda s: s[0])
    times = np.empty(len(states))
    q = np.empty((len(states), len(names)))
    for i, (stamp, msg_names, pos) in enumerate(states):
        index = {n: k for k, n in enumerate(msg_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise RecordingError(
                f"{STATE_TOPIC} message at t={stamp:.3f} lacks joints {missing[:4]}"
                f"{'...' if len(missing) > 4 else ''} (hand {hand!r})"
            )
        if len(pos) != len(msg_names):
            raise RecordingError(
                f"{STATE_TOPIC} message at t={stamp:.3f} has {len(msg_names)} names and {len(pos)} positions"
            )
        times[i] = stamp
        q[i] = pos[[index[n] for n in names]]
    return times, q


def _split_sequences(times: np.ndarray, gap_factor: float) -> list[np.ndarray]:
    """Index arrays of command runs separated by pauses longer than gap_factor sample periods."""
    if len(times) < 2:
        return [np.arange(len(times))]
    dt = np.diff(times)
    period = float(np.median(dt))
    breaks = np.flatnonzero(dt > gap_factor * period) + 1
    return [idx for idx in np.split(np.arange(len(times)), breaks) if len(idx) >= 2]


def read_bag(
    path: str | Path,
    hand: str = robot_spec.DEFAULT_HAND,
    gap_factor: float = 3.0,
    max_length_mismatch: float = 0.05,
) -> Recording:
    """A Recording from a rosbag2 (MCAP) bag with /joint_commands and /joint_states (JointState).

    Sequences are the runs of commands separated by pauses (> gap_factor periods without commands); the
    joint states are linearly interpolated at the command times (header stamps, else bag log times).
    Sequences of different length are cut to the shortest (at most ``max_length_mismatch`` apart).
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"bag {path} does not exist")
    commands, states = _read_joint_state_topics(path)
    cmd_t, cmd_q = _full_commands(commands)
    st_t, st_q = _state_matrix(states, hand)
    runs = _split_sequences(cmd_t, gap_factor)
    if not runs:
        raise RecordingError(f"{path}: no command sequence with at least 2 samples")
    lengths = [len(r) for r in runs]
    shortest = min(lengths)
    if (max(lengths) - shortest) > max_length_mismatch * max(lengths):
        raise RecordingError(
            f"{path}: command sequences have lengths {lengths}; more than {max_length_mismatch:.0%} apart"
        )
    targets, measured, times = [], [], []
    for run in runs:
        run = run[:shortest]
        t = cmd_t[run]
        if t[0] < st_t[0] or t[-1] > st_t[-1]:
            raise RecordingError(
                f"{path}: {STATE_TOPIC} does not cover the commands of a sequence "
                f"([{t[0]:.3f}, {t[-1]:.3f}] vs states [{st_t[0]:.3f}, {st_t[-1]:.3f}])"
            )
        q = np.stack([np.interp(t, st_t, st_q[:, j]) for j in range(st_q.shape[1])], axis=-1)
        targets.append(cmd_q[run])
        measured.append(q)
        times.append(t - t[0])
    return Recording(np.stack(targets), np.stack(measured), np.stack(times), hand)
