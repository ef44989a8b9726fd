"""Runs the real DriverNode in its own process with an instrumented backend (tests only).

    python driver_harness.py --twin fake|sim --record FILE --ros-args -p key:=value ...

--twin fake: the sim backend's real-time thread around driver_testing.KinematicTwin;
--twin sim: the real recipe_sim SimTwin; --twin none: the backend named by the `backend`
parameter (e.g. gr1 against loopback fake peers). Every target the backend receives is appended
to --record (see driver_testing.RecordingBackend).
"""

from __future__ import annotations

import argparse
import sys

import driver_testing
from rclpy.utilities import remove_ros_args

from recipe_common.ros.shutdown import RosRunner
from recipe_gr1_driver.backends import make_backend
from recipe_gr1_driver.backends.sim import SimBackend
from recipe_gr1_driver.node import DriverNode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--twin", choices=["fake", "sim", "none"], default="fake")
    ap.add_argument("--record", required=True)
    opts = ap.parse_args(remove_ros_args(sys.argv)[1:])
    with RosRunner(sys.argv) as ros:  # the same stop path as the driver's own main
        node = DriverNode(backend_factory=lambda cfg: _instrumented(cfg, opts))
        ros.add(node, stop=node.shutdown)
        ros.spin()
    return 0


def _instrumented(cfg, opts):
    if opts.twin == "none":
        inner = make_backend(cfg)
    else:
        factory = driver_testing.KinematicTwin if opts.twin == "fake" else None
        inner = SimBackend(hand=cfg.hand, overlay=cfg.sim_overlay or None, object_name=cfg.sim_object or None,
                           seed=cfg.sim_seed, real_time_factor=cfg.sim_real_time_factor,
                           render=cfg.camera_rate_hz > 0, camera_size=(cfg.camera_width, cfg.camera_height),
                           twin_factory=factory)
    return driver_testing.RecordingBackend(inner, opts.record)


if __name__ == "__main__":
    sys.exit(main())
