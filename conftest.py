"""Test-session isolation for ROS 2: localhost-only discovery, a ROS domain of our own, logs in the workspace.

Set before any test imports rclpy; subprocesses started by tests inherit it.
"""

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# A unique domain per test process, so concurrent runs on one host cannot see each other's nodes.
# Domains 1..100 keep Fast DDS ports within range; an explicit RECIPE_TEST_DOMAIN_ID wins.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("RECIPE_TEST_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_LOG_DIR", str(_ROOT / "log" / "ros-tests"))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("RECIPE_CONFIG_DIR", str(_ROOT / "config"))
