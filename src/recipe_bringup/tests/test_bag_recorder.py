"""No bag is lost: SIGINT at any point of the close, SIGINT to a recording process, a killed recording."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image, JointState

from recipe_bringup.bag_recorder import (
    BagError,
    BagRecorder,
    find_unfinished_bags,
    is_unfinished_bag,
    main,
    read_bag,
    recover_bag,
)
from recipe_common.ros.shutdown import init_ros

TOPICS = {"/joint_states": JointState, "/camera/head/depth/image_rect_raw": Image}
ROOT = Path(__file__).resolve().parents[3]


def _state(i: int) -> bytes:
    msg = JointState()
    msg.name = ["a", "b"]
    msg.position = [float(i), -float(i)]
    return serialize_message(msg)


def _image(i: int, size: int = 200_000) -> bytes:
    msg = Image()
    msg.height, msg.width, msg.encoding, msg.step = 1, size // 2, "16UC1", size
    msg.data = bytes([i % 256]) * size
    return serialize_message(msg)


@pytest.fixture()
def context():
    ctx = rclpy.Context()
    init_ros([], context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _filled_recorder(path: Path, context, states: int = 50, images: int = 8) -> BagRecorder:
    """A recorder whose subscriptions were fed directly (no DDS): exactly states + images messages."""
    rec = BagRecorder(path, TOPICS, context=context)
    callbacks = {s.topic_name: s.callback for s in rec.subscriptions}
    for i in range(states):
        callbacks["/joint_states"](_state(i))
        if images and i % max(1, states // images) == 0:
            callbacks["/camera/head/depth/image_rect_raw"](_image(i))
    return rec


def _counts(bag: Path) -> dict[str, int]:
    with Reader(bag) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


class _Tripwire:
    """File proxy for the MCAP writer's output: raises SIGINT at the n-th write (or at close)."""

    def __init__(self, inner, at: int | None) -> None:
        self.inner, self.at, self.calls = inner, at, 0

    def _tick(self) -> None:
        if self.at is not None and self.calls == self.at:
            signal.raise_signal(signal.SIGINT)
        self.calls += 1

    def write(self, data):
        self._tick()
        return self.inner.write(data)

    def close(self):
        self._tick()
        return self.inner.close()

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture()
def default_sigint():
    """Python's own SIGINT handler, whatever this process inherited (a background job starts with
    SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigint_at_every_write_of_the_close_leaves_a_complete_bag(tmp_path, context, default_sigint):
    """Every point of BagRecorder.close gets a SIGINT in turn; the bag is complete each time and the
    KeyboardInterrupt arrives after it (deferred, not lost)."""
    dry = _filled_recorder(tmp_path / "dry", context)
    trip = _Tripwire(dry._writer.storage.bio, None)
    dry._writer.storage.bio = trip
    expected = dry.close()
    dry.destroy_node()
    points = trip.calls
    assert points >= 10  # chunk, index, summary and footer records: many places to be interrupted
    assert _counts(tmp_path / "dry") == expected
    for at in range(points):
        bag = tmp_path / f"bag{at}"
        rec = _filled_recorder(bag, context)
        rec._writer.storage.bio = _Tripwire(rec._writer.storage.bio, at)
        with pytest.raises(KeyboardInterrupt):
            rec.close()
        rec.destroy_node()
        assert (bag / "metadata.yaml").is_file(), at
        assert _counts(bag) == expected, at


def test_sigint_to_a_recording_process_leaves_a_complete_bag(tmp_path):
    """A recorder process (publisher + BagRecorder under RosRunner) gets SIGINT or SIGTERM, then a
    second one while it stops: exit 0 and a bag that reads back. (The second signal is sent at once:
    one that arrives after the process has finished stopping meets the interpreter's own exit.)"""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from sensor_msgs.msg import JointState
        from rclpy.node import Node
        from recipe_bringup.bag_recorder import BagRecorder
        from recipe_common.ros.shutdown import RosRunner

        class Pub(Node):
            def __init__(self):
                super().__init__("bag_test_pub")
                self.pub = self.create_publisher(JointState, "/joint_states", 10)
                self.create_timer(0.005, self.tick)
                self.n = 0
            def tick(self):
                m = JointState(); m.name = ["a"]; m.position = [float(self.n)]
                self.pub.publish(m); self.n += 1

        with RosRunner(sys.argv) as ros:
            rec = BagRecorder(Path(sys.argv[1]), {"/joint_states": JointState})
            ros.add(rec, stop=rec.close)
            ros.add(Pub())
            print("recording", flush=True)
            ros.spin()
        print("closed", flush=True)
    """)
    for first, second in ((signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT)):
        bag = tmp_path / f"bag_{first.name}"
        proc = subprocess.Popen([sys.executable, "-c", script, str(bag)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        try:
            assert proc.stdout.readline().strip() == "recording", proc.stdout.read()
            time.sleep(1.0)
            proc.send_signal(first)
            proc.send_signal(second)  # "already stopping": reported, ignored
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert "closed" in out
        counts = _counts(bag)
        assert counts["/joint_states"] > 20, counts
        assert len(list(read_bag(bag))) == counts["/joint_states"]


def test_a_killed_recording_is_recovered(tmp_path, context):
    """An MCAP file cut at any byte (SIGKILL, power loss) becomes a complete bag with every message of
    the chunks written before the cut; more file never gives fewer messages."""
    full = tmp_path / "full"
    rec = _filled_recorder(full, context, states=400, images=12)  # 2.4 MB of images: several chunks
    total = rec.close()
    rec.destroy_node()
    data = (full / "full.mcap").read_bytes()
    cuts = sorted({*np.linspace(0, len(data), 23).astype(int).tolist(), len(data) - 1})
    previous = 0
    for cut in cuts:
        bag = tmp_path / f"cut{cut}"
        bag.mkdir()
        (bag / f"cut{cut}.mcap").write_bytes(data[:cut])
        assert is_unfinished_bag(bag)
        if cut < 8:  # not even the magic bytes
            with pytest.raises(BagError, match="not an MCAP file"):
                recover_bag(bag)
            continue
        with pytest.raises(BagError, match="recover"):
            list(read_bag(bag))
        counts = recover_bag(bag)
        assert not is_unfinished_bag(bag) and (bag / "metadata.yaml").is_file()
        assert _counts(bag) == {t: n for t, n in counts.items()}
        n = sum(counts.values())
        assert previous <= n <= sum(total.values())
        previous = n
        assert [f.name for f in bag.iterdir()] and not list(bag.glob("*.unfinished"))
    assert previous == sum(total.values())  # cut inside the footer: every chunk is there


def test_recover_command_finds_unfinished_bags(tmp_path, context, capsys):
    """A recording killed after a flush keeps the flushed messages; ``recover`` finds and rebuilds it."""
    done = tmp_path / "runs" / "a" / "bag"
    rec = _filled_recorder(done, context, states=30, images=0)
    rec.flush()
    flushed = (done / "bag.mcap").stat().st_size
    callback = next(s.callback for s in rec.subscriptions if s.topic_name == "/joint_states")
    for i in range(10):
        callback(_state(100 + i))  # still in the writer's memory when the "kill" comes
    rec.close()
    rec.destroy_node()
    broken = tmp_path / "runs" / "b" / "bag"
    broken.mkdir(parents=True)
    (broken / "bag.mcap").write_bytes((done / "bag.mcap").read_bytes()[:flushed + 5])
    assert find_unfinished_bags(tmp_path / "runs") == [broken]
    with pytest.raises(FileExistsError, match="recover"):
        BagRecorder(broken, TOPICS, context=context)
    assert main(["recover", str(tmp_path / "runs")]) == 0
    assert f"{broken}: 30 messages" in capsys.readouterr().out
    assert _counts(broken)["/joint_states"] == 30 and _counts(done)["/joint_states"] == 40
    assert find_unfinished_bags(tmp_path / "runs") == []
