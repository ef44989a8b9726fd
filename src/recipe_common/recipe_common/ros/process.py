"""The main of a node process: compose its nodes, spin under ``RosRunner`` until Ctrl-C/SIGTERM, exit code.

``recipe_common.ros.shutdown.RosRunner`` owns signals and the ordered stop; this adds what every node
executable of the workspace does around it: nodes that come from one ``compose()`` call (each node's own
``shutdown()`` runs at the stop), exit code 2 with one line on stderr for a configuration error (the
message names the file or parameter; an ImportError is an optional dependency the configuration asks for,
such as sam2 or pyrealsense2), 1 for any other start-up failure, 0 after a signal.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Sequence
from typing import Any

from recipe_common.config import ConfigError
from recipe_common.ros.shutdown import RosRunner


def freeze_startup_objects() -> None:
    """Exempt everything built at start-up from the cyclic garbage collector.

    A node process holds ~360k long-lived objects once torch, diffusers and rclpy are loaded, and a full
    collection walks them all: 180 ms measured in a policy node, a pause in the middle of whatever tick it
    lands on (a p99 latency, or an inference overrun). What start-up built lives until exit, so collect
    once and freeze it; later collections see only the objects made while running.
    """
    gc.collect()
    gc.freeze()


def run_nodes(compose: Callable[[], Sequence[Any]], args: Sequence[str] | None = None, *,
              name: str = "node", num_threads: int = 4) -> int:
    try:
        with RosRunner(list(sys.argv if args is None else args), num_threads=num_threads) as ros:
            for node in compose():
                ros.add(node, stop=getattr(node, "shutdown", None))
            freeze_startup_objects()
            ros.spin()
    except (ConfigError, ValueError, FileNotFoundError, ImportError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"{name}: failed: {exc!r}", file=sys.stderr)
        return 1
    finally:
        # The nodes are stopped; what is left is the interpreter's teardown, whose final garbage collection
        # walks every object of torch/diffusers: 1.3 s of a generalist policy node's stop (0.26 s frozen),
        # enough to miss the 2 s a supervisor gives a Ctrl-C on a busy machine. Nothing needs collecting now.
        gc.freeze()
    return 0
