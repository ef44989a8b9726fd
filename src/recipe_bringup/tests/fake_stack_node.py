"""A stand-in stack process for the supervisor tests: one node, behaviour chosen by environment variables.

FAKE_TOPIC: publish std_msgs/Empty there at 20 Hz (readiness); FAKE_EXIT_AFTER: exit with FAKE_EXIT_CODE
after that many seconds; FAKE_IGNORE_SIGINT=1: ignore SIGINT (a hung node); FAKE_STARTS: a file that
counts starts (restarts).
"""

import os
import signal
import sys
import time

import rclpy
from std_msgs.msg import Empty

from recipe_common.ros.process import run_nodes


def main() -> int:
    if os.environ.get("FAKE_STARTS"):
        with open(os.environ["FAKE_STARTS"], "a") as f:
            f.write(f"{os.getpid()}\n")
    exit_after = float(os.environ.get("FAKE_EXIT_AFTER", "0"))
    if exit_after:
        time.sleep(exit_after)
        return int(os.environ.get("FAKE_EXIT_CODE", "1"))

    def compose():
        node = rclpy.create_node(os.environ.get("FAKE_NAME", "fake"))
        pub = node.create_publisher(Empty, os.environ.get("FAKE_TOPIC", "/fake"), 10)
        node.create_timer(0.05, lambda: pub.publish(Empty()))
        if os.environ.get("FAKE_IGNORE_SIGINT") == "1":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return [node]

    return run_nodes(compose, name="fake")


if __name__ == "__main__":
    sys.exit(main())
