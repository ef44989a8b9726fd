"""A live rosbag2 (MCAP) recorder node for the pip-only workspace, where `ros2 bag` does not exist.

Subscribes to each topic with ``raw=True`` (the serialized CDR bytes are written as received, so
nothing is deserialized on the hot path) and writes a rosbag2 directory (metadata.yaml + .mcap) with
``rosbags``; ``ros2 bag info/play`` on a full ROS install reads it. Our own recipe_interfaces types
are registered from their .msg definitions so the bag is self-describing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from recipe_common.paths import workspace_dir


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

    def __init__(self, path: str | Path, topics: dict[str, type], node_name: str = "bag_recorder") -> None:
        super().__init__(node_name)
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag directory {self.path} already exists; choose a new path")
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
        """Finish the bag (idempotent); returns the message count per topic."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()
        return dict(self.counts)


def read_bag(path: str | Path, topics: Iterable[str] | None = None):
    """Yield (topic, timestamp_ns, message) from a rosbag2 directory, deserialized with rosbags."""
    from rosbags.rosbag2 import Reader

    ts = recipe_typestore()
    wanted = set(topics) if topics is not None else None
    with Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, stamp, raw in reader.messages(connections=conns):
            yield conn.topic, stamp, ts.deserialize_cdr(raw, conn.msgtype)
