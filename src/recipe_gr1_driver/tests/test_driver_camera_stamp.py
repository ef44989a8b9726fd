"""The twin's depth frames carry the time their pose was taken, as a camera's exposure stamp does."""

import threading
import time
from typing import ClassVar

import rclpy
from driver_testing import KinematicTwin
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from recipe_gr1_driver.backends.sim import SimBackend
from recipe_gr1_driver.node import DriverNode

RENDER_S = 0.3


class SlowRenderTwin(KinematicTwin):
    """A render that takes RENDER_S, as an 848x480 one can on a busy host; records when each began."""

    started: ClassVar[list[float]] = []

    def render_depth(self, camera: str):
        SlowRenderTwin.started.append(time.time())
        time.sleep(RENDER_S)
        return super().render_depth(camera)


def test_a_depth_frame_is_stamped_when_its_pose_was_taken_not_after_the_render():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    backend = SimBackend(hand="fourier", render=True, twin_factory=SlowRenderTwin)
    driver = DriverNode(backend=backend, context=ctx,
                        parameter_overrides=[Parameter("camera_rate_hz", value=1.0)])
    io = rclpy.create_node("stamp_test_io", context=ctx)
    frames: list[tuple[float, float]] = []  # (stamp, arrival)
    io.create_subscription(Image, "/camera/third_view/depth/image_rect_raw",
                           lambda m: frames.append((m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec,
                                                    time.time())), 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(driver)
    ex.add_node(io)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        deadline = time.monotonic() + 20.0
        while len(frames) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(frames) >= 2, "no third-view frames"
        stamp, arrival = frames[-1]
        began = max(t for t in SlowRenderTwin.started if t <= stamp + 0.05)
        assert stamp - began < 0.1  # the render's start (the pose), not its end
        assert arrival - stamp >= RENDER_S - 0.02
    finally:
        ex.shutdown()
        driver.shutdown()
        io.destroy_node()
        rclpy.shutdown(context=ctx)
