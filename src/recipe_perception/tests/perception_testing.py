"""Test helpers: a ray-cast tabletop seen by the tripod camera (no MuJoCo), and an in-process ROS rig."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, JointState

from recipe_common.cameras import HEAD, THIRD_VIEW, Intrinsics, camera_table
from recipe_common.ros.executor import MultiThreadedExecutor
from recipe_interfaces.msg import ObjectState
from recipe_perception.extrinsics import from_scene

TABLE_Z = -0.03  # the table top in base_link (0.90 m in the world, base at 0.93 m)
STREAM = camera_table()[THIRD_VIEW].stream
EXT = from_scene(THIRD_VIEW)


def raycast_boxes(
    boxes: list[tuple[np.ndarray, np.ndarray]],
    k: Intrinsics = STREAM,
    cam_to_base: np.ndarray | None = None,
    table_z: float = TABLE_Z,
) -> np.ndarray:
    """Depth (m, float32, NaN where nothing is hit) of a table plane and axis-aligned boxes (centre,
    half-size in base_link), from the tripod camera: a stand-in frame that needs no renderer."""
    t = EXT.cam_to_parent if cam_to_base is None else cam_to_base
    u = (np.arange(k.width) - k.cx) / k.fx
    v = (np.arange(k.height) - k.cy) / k.fy
    uu, vv = np.meshgrid(u, v)
    rays_cam = np.stack([uu, vv, np.ones_like(uu)], axis=-1)  # z = 1: the ray parameter is the depth
    dirs = rays_cam @ t[:3, :3].T
    origin = t[:3, 3]
    depth = np.full(uu.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_table = (table_z - origin[2]) / dirs[..., 2]
    depth = np.where((z_table > 0) & np.isfinite(z_table), z_table, depth)
    for centre, half in boxes:
        lo, hi = np.asarray(centre) - half, np.asarray(centre) + half
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo - origin) / dirs
            t2 = (hi - origin) / dirs
        near = np.nanmax(np.minimum(t1, t2), axis=-1)
        far = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (near <= far) & (near > 0)
        depth = np.where(hit & (near < depth), near, depth)
    depth[~np.isfinite(depth) | (depth > 10.0)] = np.nan
    return depth.astype(np.float32)


def to_mm(depth_m: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(depth_m), np.round(depth_m * 1000.0), 0).astype(np.uint16)


def stamp_msg(t: float) -> Any:
    return Time(nanoseconds=int(t * 1e9)).to_msg()


class Rig:
    """A PerceptionNode plus a test I/O node in one rclpy context, spinning in a thread."""

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        extra_nodes: Callable[[Any], list[Any]] | None = None,
        segmenter: Any = None,
    ) -> None:
        from recipe_perception.node import PerceptionNode

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.nodes: list[Any] = list(extra_nodes(self.ctx)) if extra_nodes else []
        overrides = [Parameter(k, value=v) for k, v in (params or {}).items()]
        self.node = PerceptionNode(segmenter=segmenter, context=self.ctx, parameter_overrides=overrides)
        self.io = rclpy.create_node("perception_test_io", context=self.ctx)
        q = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        t3, th = camera_table()[THIRD_VIEW].topics(), camera_table()[HEAD].topics()
        self.pub = {
            "depth": self.io.create_publisher(Image, t3.depth, q),
            "info": self.io.create_publisher(CameraInfo, t3.depth_info, q),
            "color": self.io.create_publisher(Image, t3.color, q),
            "aligned": self.io.create_publisher(Image, t3.aligned_depth, q),
            "aligned_info": self.io.create_publisher(CameraInfo, t3.aligned_depth_info, q),
            "head": self.io.create_publisher(Image, th.depth, q),
            "head_info": self.io.create_publisher(CameraInfo, th.depth_info, q),
            "joints": self.io.create_publisher(JointState, "/joint_states", q),
        }
        self.states: list[ObjectState] = []
        self.images: dict[str, list[Image]] = {"debug": [], "head": [], "head_seg": []}
        self.diagnostics: list[DiagnosticArray] = []
        cfg = self.node.cfg
        self.io.create_subscription(ObjectState, cfg.object_state_topic, self.states.append, q)
        for key, topic in (
            ("debug", cfg.debug_image_topic),
            ("head", cfg.head_policy_image_topic),
            ("head_seg", cfg.head_segmented_topic),
        ):
            self.io.create_subscription(Image, topic, self.images[key].append, q)
        self.io.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, q)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.ctx)
        for n in [*self.nodes, self.node, self.io]:
            self.executor.add_node(n)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return self.io.get_clock().now().nanoseconds * 1e-9

    def publish_depth(
        self,
        depth: np.ndarray | None = None,
        *,
        encoding: str = "16UC1",
        stamp: float | None = None,
        info_size: tuple[int, int] | None = None,
        k: Intrinsics = STREAM,
        raw: bytes | None = None,
        width: int | None = None,
        height: int | None = None,
        topic: str = "depth",
    ) -> None:
        stamp = self.now() if stamp is None else stamp
        img = Image()
        img.header.stamp, img.header.frame_id = stamp_msg(stamp), "third_view_camera_depth_optical_frame"
        if raw is None:
            assert depth is not None
            arr = to_mm(depth) if encoding == "16UC1" else np.ascontiguousarray(depth, dtype="<f4")
            raw = arr.tobytes()
            height, width = depth.shape
        img.height, img.width, img.encoding, img.is_bigendian = int(height), int(width), encoding, 0
        img.step = len(raw) // max(int(height), 1)
        img.data = raw
        info = CameraInfo()
        info.header = img.header
        w, h = info_size or (k.width, k.height)
        info.width, info.height, info.k, info.p = w, h, k.k(), k.p()
        info.d, info.distortion_model = [0.0] * 5, "plumb_bob"
        self.pub["info" if topic == "depth" else f"{topic}_info"].publish(info)
        self.pub[topic].publish(img)

    def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        return pred()

    def stream(self, frame_fn: Callable[[], None], seconds: float, rate_hz: float = 10.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame_fn()
            time.sleep(1.0 / rate_hz)

    def close(self) -> None:
        self.executor.shutdown()
        for n in [self.node, *self.nodes]:
            shutdown = getattr(n, "shutdown", None)
            if shutdown is not None:
                shutdown()
        for n in [*self.nodes, self.node, self.io]:
            n.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        self._thread.join(timeout=5.0)
