"""A live rosbag2 (MCAP) recorder node for the pip-only workspace, where `ros2 bag` does not exist.

Subscribes to each topic with ``raw=True`` (the serialized CDR bytes are written as received, so
nothing is deserialized on the hot path) and writes a rosbag2 directory (metadata.yaml + .mcap) with
``rosbags``; ``ros2 bag info/play`` on a full ROS install reads it. Our own recipe_interfaces types
are registered from their .msg definitions so the bag is self-describing.

No bag is lost on Ctrl-C or a crash:

* ``close()`` writes the MCAP summary, footer and metadata.yaml with SIGINT/SIGTERM deferred
  (recipe_common.ros.shutdown.deferred_signals): a signal that lands during the close is delivered
  once the bag is complete. (Before, a Ctrl-C right after ``./dev demo`` printed its summary
  interrupted the close in 2 of 5 runs and left a 67 MB .mcap without footer or metadata.yaml.)
* The writer keeps messages in a 1 MiB chunk in memory (rosbags' MCAP writer); the recorder writes
  the chunk out every ``flush_period_s`` (1 s), so a killed recording loses at most that much.
* A bag that was never closed (SIGKILL, power loss, a segfault) is rebuilt by ``recover_bag``
  (``python -m recipe_bringup.bag_recorder recover DIR``): it reads the MCAP data records in file
  order up to the last complete chunk and writes a complete bag with the same topics and types.
  ``find_unfinished_bags(root)`` lists them; ``read_bag`` names the command when it meets one.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import struct
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from recipe_common.paths import workspace_dir
from recipe_common.ros.shutdown import deferred_signals

METADATA = "metadata.yaml"
UNFINISHED_SUFFIX = ".unfinished"  # the original data file while recover_bag rebuilds it


class BagError(RuntimeError):
    """A bag directory cannot be read or recovered; the message names it and what to do."""


def recipe_typestore():
    """The kilted typestore plus recipe_interfaces messages, registered from their .msg text."""
    ts = get_typestore(Stores.ROS2_KILTED)
    msg_dir = workspace_dir() / "src" / "recipe_interfaces" / "msg"
    types = {}
    for f in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"recipe_interfaces/msg/{f.stem}"))
    ts.register(types)
    return ts


def ros_type_name(msg_class: type) -> str:
    """'sensor_msgs/msg/JointState' for the rclpy class of that message."""
    module = msg_class.__module__.split(".")  # e.g. sensor_msgs.msg._joint_state
    return f"{module[0]}/msg/{msg_class.__name__}"


class BagRecorder(Node):
    """Records ``topics`` (name -> rclpy message class) into a new rosbag2 MCAP directory ``path``."""

    def __init__(self, path: str | Path, topics: dict[str, type], node_name: str = "bag_recorder",
                 flush_period_s: float = 1.0, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.path = Path(path)
        if self.path.exists():
            hint = (f" (an unfinished bag: python -m recipe_bringup.bag_recorder recover {self.path})"
                    if is_unfinished_bag(self.path) else "")
            raise FileExistsError(f"bag directory {self.path} already exists; choose a new path{hint}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._typestore = recipe_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._lock = threading.Lock()
        self._closed = False
        self.counts: dict[str, int] = {}
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic, cls in topics.items():
            conn = self._writer.add_connection(topic, ros_type_name(cls), typestore=self._typestore)
            self.counts[topic] = 0
            self.create_subscription(cls, topic, self._writer_cb(topic, conn), qos, raw=True)
        if flush_period_s > 0:
            self.create_timer(flush_period_s, self.flush)

    def flush(self) -> None:
        """Write the chunk being filled to the file (what a killed process then keeps)."""
        with self._lock:
            if self._closed:
                return
            storage = self._writer.storage  # rosbags' McapWriter (pinned rosbags 0.11)
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()

    def _writer_cb(self, topic: str, conn):
        def cb(data: bytes) -> None:
            stamp = self.get_clock().now().nanoseconds
            with self._lock:
                if self._closed:
                    return
                self._writer.write(conn, stamp, data)
                self.counts[topic] += 1

        return cb

    def close(self) -> dict[str, int]:
        """Finish the bag (idempotent); returns the message count per topic.

        SIGINT/SIGTERM are deferred until the footer and metadata.yaml are written (main thread; in
        other threads Python cannot interrupt the close anyway).
        """
        with deferred_signals(), self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()
        return dict(self.counts)


def read_bag(path: str | Path, topics: Iterable[str] | None = None):
    """Yield (topic, timestamp_ns, message) from a rosbag2 directory, deserialized with rosbags."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if is_unfinished_bag(path):
        raise BagError(f"{path}: unfinished bag (no {METADATA}: the recording was killed before it was "
                       f"closed); rebuild it with: python -m recipe_bringup.bag_recorder recover {path}")
    ts = recipe_typestore()
    wanted = set(topics) if topics is not None else None
    with Reader(path) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, stamp, raw in reader.messages(connections=conns):
            yield conn.topic, stamp, ts.deserialize_cdr(raw, conn.msgtype)


# --------------------------------------------------------------------------- recovery

MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x03, 0x04, 0x05, 0x06


def is_unfinished_bag(path: str | Path) -> bool:
    """A directory with an MCAP data file (or one being recovered) but no metadata.yaml."""
    path = Path(path)
    return path.is_dir() and not (path / METADATA).is_file() and bool(_data_files(path))


def _data_files(path: Path) -> list[Path]:
    return sorted([*path.glob("*.mcap"), *path.glob("*.mcap" + UNFINISHED_SUFFIX)])


def find_unfinished_bags(root: str | Path) -> list[Path]:
    """Every unfinished bag directory under ``root`` (for a tool to recover at start-up)."""
    root = Path(root)
    if not root.is_dir():
        return []
    dirs = {p.parent for pattern in ("*.mcap", "*.mcap" + UNFINISHED_SUFFIX) for p in root.rglob(pattern)}
    return sorted(d for d in dirs if is_unfinished_bag(d))


def _read_exact(f: BinaryIO, n: int) -> bytes | None:
    data = f.read(n)
    return data if len(data) == n else None


def _records(f: BinaryIO, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(opcode, body) of each complete MCAP record; stops quietly at a truncated one."""
    while end is None or f.tell() < end:
        head = _read_exact(f, 9)
        if head is None:
            return
        op, length = head[0], struct.unpack_from("<Q", head, 1)[0]
        body = _read_exact(f, length)
        if body is None:
            return
        yield op, body


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0] if len(value) == 1 else value

    def string(self) -> str:
        return self.bytes_().decode()

    def bytes_(self) -> bytes:
        n = self.take("<I")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def _scan_mcap(path: Path) -> Iterator[tuple[int, Any]]:
    """Schema, channel and message records of an MCAP file in file order, chunks opened."""
    from rosbags.rosbag2.storage_mcap import decompress
    with open(path, "rb") as f:
        if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            raise BagError(f"{path}: not an MCAP file (bad magic)")
        for op, body in _records(f):
            if op == _OP_CHUNK:
                c = _Cursor(body)
                _start, _end, raw_size, crc = c.take("<QQQI")
                compression = c.string()
                size = c.take("<Q")
                inner = decompress(body[c.pos:c.pos + size], compression, raw_size, crc)  # checks the crc
                yield from _parse(_records(io.BytesIO(inner)))
            else:
                yield from _parse(iter([(op, body)]))


def _parse(records: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
    for op, body in records:
        c = _Cursor(body)
        if op == _OP_SCHEMA:
            yield op, (c.take("<H"), c.string(), c.string(), c.string())  # id, name, encoding, data
        elif op == _OP_CHANNEL:
            cid, schema_id = c.take("<HH")
            topic, encoding = c.string(), c.string()
            yield op, (cid, schema_id, topic, encoding, c.bytes_())
        elif op == _OP_MESSAGE:
            cid, _seq, log_time, _pub_time = c.take("<HIQQ")
            yield op, (cid, log_time, body[c.pos:])


def recover_bag(path: str | Path) -> dict[str, int]:
    """Rebuild an unfinished bag in place; returns the recovered message count per topic.

    Reads the data file's records in order (every chunk that was written completely; the chunk being
    filled when the process died, at most 1 MiB, is lost), writes a complete bag next to it, checks
    it opens, then swaps it in. Safe to run again if interrupted. A complete bag is left alone.
    """
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.rosbag2.storage_mcap import get_qos
    from rosbags.typesys import get_types_from_msg

    path = Path(path)
    if (path / METADATA).is_file():
        with Reader(path) as reader:
            return {c.topic: c.msgcount for c in reader.connections}
    files = _data_files(path)
    if not files:
        raise BagError(f"{path}: no .mcap file to recover")
    if len(files) > 1 and not any(f.name.endswith(UNFINISHED_SUFFIX) for f in files):
        raise BagError(f"{path}: several data files {[f.name for f in files]}; recover them one by one")
    source = next((f for f in files if f.name.endswith(UNFINISHED_SUFFIX)), files[0])
    target_name = source.name.removesuffix(UNFINISHED_SUFFIX)
    work = path.parent / f".{path.name}.recovering"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    ts = recipe_typestore()
    schemas: dict[int, tuple[str, str]] = {}
    counts: dict[str, int] = {}
    try:
        with Writer(work / path.name, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            conns: dict[int, Any] = {}
            for op, rec in _scan_mcap(source):
                if op == _OP_SCHEMA:
                    schemas[rec[0]] = (rec[1], rec[3])
                elif op == _OP_CHANNEL:
                    cid, schema_id, topic, encoding, metadata = rec
                    if cid in conns or schema_id not in schemas:
                        continue
                    msgtype, msgdef = schemas[schema_id]
                    if msgtype not in ts.fielddefs:
                        ts.register(get_types_from_msg(msgdef, msgtype))
                    conns[cid] = writer.add_connection(
                        topic, msgtype, typestore=ts, serialization_format=encoding,
                        offered_qos_profiles=get_qos(metadata))
                    counts[topic] = 0
                elif op == _OP_MESSAGE and rec[0] in conns:
                    writer.write(conns[rec[0]], rec[1], rec[2])
                    counts[conns[rec[0]].topic] += 1
        rebuilt = work / path.name
        with Reader(rebuilt) as reader:
            if sum(c.msgcount for c in reader.connections) != sum(counts.values()):
                raise BagError(f"{path}: the rebuilt bag does not read back; the original is untouched")
        # Swap: the original data file is kept (renamed) until the rebuilt one is in place.
        if source.name == target_name:
            source = source.rename(source.with_name(source.name + UNFINISHED_SUFFIX))
        os.replace(rebuilt / f"{path.name}.mcap", path / target_name)
        meta = (rebuilt / METADATA).read_text()
        if f"{path.name}.mcap" != target_name:
            meta = meta.replace(f"{path.name}.mcap", target_name)
        tmp = path / (METADATA + ".tmp")
        tmp.write_text(meta)
        os.replace(tmp, path / METADATA)
        source.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recipe_bringup.bag_recorder",
                                description="Bag tools: rebuild an unfinished rosbag2 MCAP bag.")
    sub = p.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("recover", help="rebuild unfinished bags (no metadata.yaml) in place")
    rec.add_argument("paths", nargs="+", type=Path, help="bag directories, or folders to search for them")
    a = p.parse_args(argv)
    code = 0
    for root in a.paths:
        is_bag = is_unfinished_bag(root) or (root / METADATA).is_file()
        bags = [root] if is_bag else find_unfinished_bags(root)
        if not bags:
            print(f"{root}: no unfinished bag found", file=sys.stderr)
        for bag in bags:
            try:
                counts = recover_bag(bag)
            except (BagError, OSError) as exc:
                print(f"{bag}: cannot recover: {exc}", file=sys.stderr)
                code = 1
                continue
            print(f"{bag}: {sum(counts.values())} messages: "
                  + ", ".join(f"{t}={n}" for t, n in sorted(counts.items())))
    return code


if __name__ == "__main__":
    sys.exit(main())
