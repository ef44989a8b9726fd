"""Recording: validation, .npz round trip, and reading a rosbag2 MCAP bag written here with rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recipe_autotune.recording import Recording, RecordingError, load_recording, read_bag
from recipe_common import robot_spec

HAND = "fourier"
N_STATE = len(robot_spec.state_joint_names(HAND))


def _recording(n: int = 2, t: int = 30, seed: int = 0) -> Recording:
    rng = np.random.default_rng(seed)
    times = np.tile(np.arange(t) * 0.1, (n, 1))
    return Recording(rng.normal(size=(n, t, 26)), rng.normal(size=(n, t, N_STATE)), times, HAND)


def test_npz_round_trip(tmp_path: Path):
    rec = _recording()
    path = rec.save(tmp_path / "sub" / "rec.npz")
    back = load_recording(path)
    assert back.hand == HAND and back.joint_names == robot_spec.state_joint_names(HAND)
    for a, b in ((rec.targets, back.targets), (rec.measured, back.measured), (rec.times, back.times)):
        assert np.array_equal(a, b)
    assert back.period == pytest.approx(0.1)
    assert back.subset([1]).num_sequences == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(targets=np.zeros((2, 30, 25))), "targets must have shape"),
        (dict(measured=np.zeros((2, 30, 38))), "measured must have shape"),
        (dict(times=np.zeros((2, 29))), "times must have shape"),
        (dict(hand="shadow"), "hand"),
    ],
)
def test_bad_shapes_are_rejected(change, message):
    rec = _recording()
    fields = dict(targets=rec.targets, measured=rec.measured, times=rec.times, hand=HAND) | change
    with pytest.raises(RecordingError, match=message):
        Recording(**fields)


def test_nan_and_bad_times_are_rejected():
    rec = _recording()
    measured = rec.measured.copy()
    measured[1, 4, 7] = np.nan
    with pytest.raises(RecordingError, match=r"measured contains NaN or inf \(first at index \(1, 4, 7\)\)"):
        Recording(rec.targets, measured, rec.times, HAND)
    times = rec.times.copy()
    times[0, 5] = times[0, 4]
    with pytest.raises(RecordingError, match="strictly increasing"):
        Recording(rec.targets, rec.measured, times, HAND)


def test_malformed_npz_files(tmp_path: Path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(RecordingError, match=r"not a readable \.npz"):
        Recording.load(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, targets=np.zeros((1, 2, 26)))
    with pytest.raises(RecordingError, match="missing array"):
        Recording.load(partial)
    with pytest.raises(RecordingError, match="does not exist"):
        Recording.load(tmp_path / "nope.npz")
    with pytest.raises(RecordingError, match=r"expected an \.npz"):
        load_recording(tmp_path / "file.txt")


# ---- rosbag2 MCAP ----
def _joint_state(typestore, stamp_ns: int, names: list[str], positions: np.ndarray):
    JointState = typestore.types["sensor_msgs/msg/JointState"]
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id="")
    empty = np.zeros(0)
    return JointState(
        header=header,
        name=names,
        position=np.asarray(positions, dtype=np.float64),
        velocity=empty,
        effort=empty,
    )


def _state_at(t: np.ndarray) -> np.ndarray:
    """A known smooth joint trajectory (T, 36) to check the interpolation against."""
    j = np.arange(N_STATE)
    return 0.3 * np.sin(0.7 * t[:, None] + 0.2 * j[None]) + 0.01 * j[None]


def _write_bag(
    path: Path,
    starts: list[float],
    seconds: float,
    skip_state_topic: bool = False,
    partial_first: bool = False,
) -> np.ndarray:
    """Commands at 10 Hz in runs starting at ``starts`` (s), joint states at 100 Hz throughout."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    actuated = robot_spec.actuated_joint_names()
    state_names = robot_spec.state_joint_names(HAND)
    t0 = 1_700_000_000.0
    cmd_rows = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        cmd = writer.add_connection("/joint_commands", "sensor_msgs/msg/JointState", typestore=ts)
        st = (
            None
            if skip_state_topic
            else writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=ts)
        )
        events = []
        for s in starts:
            for i in range(round(seconds * 10)):
                tc = s + i * 0.1
                q = 0.1 * np.sin(tc + np.arange(26))
                names, pos = actuated, q
                if partial_first and i == 0 and s == starts[0]:
                    names, pos = actuated[:14], q[:14]  # arms only: not a full command yet
                else:
                    cmd_rows.append(q)
                events.append((tc, cmd, names, pos))
        if st is not None:
            end = starts[-1] + seconds + 0.5
            # shuffle the state joint order to check the name mapping
            order = np.random.default_rng(0).permutation(N_STATE)
            for k in range(round(end * 100) + 1):
                ts_ = k * 0.01
                q = _state_at(np.array([ts_]))[0]
                events.append((ts_, st, [state_names[i] for i in order], q[order]))
        for t, conn, names, pos in sorted(events, key=lambda e: e[0]):
            ns = round((t0 + t) * 1e9)
            msg = _joint_state(ts, ns, list(names), pos)
            writer.write(conn, ns, ts.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
    return np.asarray(cmd_rows)


def test_bag_round_trip_splits_sequences_and_interpolates_states(tmp_path: Path):
    bag = tmp_path / "calib_bag"
    cmd_rows = _write_bag(bag, starts=[0.2, 4.0], seconds=2.0)
    rec = read_bag(bag, hand=HAND)
    assert rec.num_sequences == 2 and rec.num_samples == 20
    assert np.allclose(rec.targets.reshape(-1, 26), cmd_rows)
    assert np.allclose(rec.times[0], np.arange(20) * 0.1, atol=1e-6)
    # measured = the state trajectory at the command times (linear interpolation of 100 Hz samples)
    expected = _state_at(0.2 + np.arange(20) * 0.1)
    assert np.allclose(rec.measured[0], expected, atol=2e-4)
    expected = _state_at(4.0 + np.arange(20) * 0.1)
    assert np.allclose(rec.measured[1], expected, atol=2e-4)
    # the .mcap file path works too, and so does load_recording on the directory
    mcap = next(bag.glob("*.mcap"))
    assert np.array_equal(read_bag(mcap).targets, rec.targets)
    assert np.array_equal(load_recording(bag).measured, rec.measured)


def test_bag_partial_command_waits_for_all_joints(tmp_path: Path):
    bag = tmp_path / "partial_bag"
    cmd_rows = _write_bag(bag, starts=[0.2], seconds=2.0, partial_first=True)
    rec = read_bag(bag, hand=HAND)
    assert rec.num_samples == 19
    assert np.allclose(rec.targets[0], cmd_rows)


def test_bag_errors_are_clear(tmp_path: Path):
    bag = tmp_path / "no_states"
    _write_bag(bag, starts=[0.2], seconds=1.0, skip_state_topic=True)
    with pytest.raises(RecordingError, match="no /joint_states topic"):
        read_bag(bag)
    with pytest.raises(RecordingError, match="not a rosbag2 directory"):
        read_bag(tmp_path)
    with pytest.raises(RecordingError, match="does not exist"):
        read_bag(tmp_path / "missing")
    short = tmp_path / "short"
    _write_bag(short, starts=[0.2], seconds=1.0)
    with pytest.raises(RecordingError, match="lacks joints"):
        read_bag(short, hand="inspire")  # inspire has 12 coupled joints the fourier states lack
