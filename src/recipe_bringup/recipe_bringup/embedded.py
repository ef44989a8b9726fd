"""The embedded default: the deploy stack in one process on the MuJoCo twin of the GR1.

No registry has ROS 2 `launch`, so instead of `ros2 launch recipe_bringup deploy.launch.py` this runs
the same node classes in one process with a MultiThreadedExecutor (manual composition): the GR1
driver with its sim backend (twin + depth cameras on the realsense2_camera topic names), a task
commander (today the scripted play motion of the task; the diffusion policy takes this place once
trained), and a rosbag2 MCAP recorder of the session. Prints the achieved rates and tracking error
and writes a depth snapshot of both cameras.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, JointState

from recipe_bringup.bag_recorder import BagRecorder
from recipe_bringup.scripted_commander import ScriptedCommander
from recipe_common import robot_spec
from recipe_common.cameras import camera_table
from recipe_common.paths import config_path, workspace_dir
from recipe_common.ros.executor import MultiThreadedExecutor
from recipe_gr1_driver.node import DriverNode
from recipe_sim.model.scene import load_scene
from recipe_sim.scripted_play import TASK_OBJECTS, play_commands

CAMERA_TOPICS = tuple(cam.topics().depth for cam in camera_table().values())


class StateMonitor(Node):
    """Keeps the latest joint state and depth frames for the summary at the end."""

    def __init__(self) -> None:
        super().__init__("embedded_monitor")
        self.states = 0
        self.last_state: JointState | None = None
        self.depth: dict[str, Image] = {}
        self.create_subscription(JointState, "/joint_states", self._on_state, 10)
        for t in CAMERA_TOPICS:
            self.create_subscription(Image, t, lambda m, t=t: self.depth.__setitem__(t, m), 2)

    def _on_state(self, msg: JointState) -> None:
        self.states += 1
        self.last_state = msg


def _save_depth_png(images: dict[str, Image], path: Path) -> Path | None:
    if not images:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(5 * len(images), 3.2), squeeze=False)
    for ax, (topic, img) in zip(axes[0], sorted(images.items()), strict=True):
        depth = np.frombuffer(bytes(img.data), np.uint16).reshape(img.height, img.width) / 1000.0
        im = ax.imshow(np.where(depth > 0, depth, np.nan), cmap="viridis")
        ax.set_title(topic.split("/")[2] + " depth (m)")
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def run(task: str, duration: float, out: Path, hand: str, record: bool, cameras: bool) -> int:
    out.mkdir(parents=True, exist_ok=True)
    obj = TASK_OBJECTS[task]
    print(f"[embedded] task={task} object={obj} hand={hand} -> {out}", flush=True)
    commands = play_commands(task, load_scene().spawn_xy, seed=0, object_name=obj, hand=hand)
    rclpy.init(args=["--ros-args", "--params-file", str(config_path("driver.yaml"))])
    overrides = [Parameter("backend", value="sim"), Parameter("hand", value=hand),
                 Parameter("sim_object", value=obj),
                 Parameter("camera_rate_hz", value=5.0 if cameras else 0.0)]
    nodes: list[Node] = []
    executor = MultiThreadedExecutor(num_threads=4)
    bag = None
    try:
        driver = DriverNode(parameter_overrides=overrides)
        monitor = StateMonitor()
        nodes += [driver, monitor]
        if record:
            topics: dict[str, type] = {"/joint_states": JointState, "/joint_commands": JointState,
                                       "/diagnostics": DiagnosticArray}
            if cameras:
                for t in CAMERA_TOPICS:
                    topics[t] = Image
                    topics[t.replace("image_rect_raw", "camera_info")] = CameraInfo
            bag = BagRecorder(out / "bag", topics)
            nodes.append(bag)
        commander = ScriptedCommander(commands)
        nodes.append(commander)
        for n in nodes:
            executor.add_node(n)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < duration and rclpy.ok():
            time.sleep(0.5)
            print(f"\r[embedded] t={time.monotonic() - t0:5.1f}s "
                  f"commands={commander.sent:4d}/{len(commands)} joint_states={monitor.states:5d}",
                  end="", flush=True)
        print()
        elapsed = time.monotonic() - t0
        # Tracking: the last commanded actuated targets vs the measured joint positions.
        err = float("nan")
        if monitor.last_state is not None:
            q = dict(zip(monitor.last_state.name, monitor.last_state.position, strict=False))
            meas = np.array([q[n] for n in robot_spec.arm_joint_names()])
            target = commands[min(commander.sent, len(commands)) - 1][: len(meas)]
            err = float(np.max(np.abs(meas - target)))
        png = _save_depth_png(monitor.depth, out / "depth.png")
        print(f"[embedded] joint_states {monitor.states / elapsed:.0f} Hz over {elapsed:.1f} s; "
              f"arm tracking max |error| at the end {err:.3f} rad")
        if png:
            print(f"[embedded] depth snapshot: {png}")
    finally:
        executor.shutdown()
        if bag is not None:
            counts = bag.close()
            print(f"[embedded] bag {out / 'bag'}: " + ", ".join(f"{t}={c}" for t, c in counts.items()))
        for n in nodes:
            if isinstance(n, DriverNode):
                n.shutdown()
            n.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="grasp_reach", choices=sorted(TASK_OBJECTS))
    p.add_argument("--duration", type=float, default=12.0, help="seconds to run")
    p.add_argument("--hand", default=robot_spec.DEFAULT_HAND, choices=sorted(robot_spec.HANDS))
    p.add_argument("--out", type=Path, default=None, help="output dir (default runs/embedded/<time>)")
    p.add_argument("--no-bag", action="store_true", help="do not record a rosbag2 MCAP bag")
    p.add_argument("--no-cameras", action="store_true", help="do not render/publish the depth cameras")
    a = p.parse_args(argv)
    out = a.out or workspace_dir() / "runs" / "embedded" / datetime.now().strftime("%Y%m%d-%H%M%S")
    return run(a.task, a.duration, out, a.hand, not a.no_bag, not a.no_cameras)


if __name__ == "__main__":
    sys.exit(main())
