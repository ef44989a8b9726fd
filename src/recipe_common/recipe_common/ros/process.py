"""Run a process of nodes until SIGINT/SIGTERM, then tear down in order: the one main of every node process.

rclpy's default signal handling shuts the context down from inside the signal handler; nodes and
timers destroyed after that raise ``RCLError: context is not valid`` and the process exits 1 with a
traceback. Here the signal only stops the executor (from a helper thread, so the handler returns at
once); then each node's own ``shutdown()`` runs (a driver stops its backend), nodes are destroyed, and
the context is shut down last. A second signal during teardown is ignored: teardown is bounded.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions

from recipe_common.config import ConfigError
from recipe_common.ros.executor import MultiThreadedExecutor


def init(args: Sequence[str] | None = None) -> None:
    """rclpy.init without rclpy's own signal handlers (``run_nodes``/``StopOnSignal`` handle signals)."""
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)


class StopOnSignal:
    """While active, SIGINT/SIGTERM set ``event`` and call ``on_stop`` (once, on a helper thread)."""

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.event = threading.Event()
        self._on_stop = on_stop
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            return
        self.event.set()
        if self._on_stop is not None:
            threading.Thread(target=self._on_stop, name="stop-on-signal", daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, signal.SIG_IGN if old is None else old)
        # keep ignoring repeated Ctrl-C during the rest of teardown
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def teardown(nodes: Sequence[Any]) -> None:
    """``shutdown()`` (where a node has one) and ``destroy_node()`` in reverse order, then the context."""
    for node in reversed(list(nodes)):
        stop = getattr(node, "shutdown", None)
        if callable(stop):
            try:
                stop()
            except Exception as exc:  # keep tearing down the others
                print(f"{node.get_name()}: shutdown failed: {exc!r}", file=sys.stderr)
        try:
            node.destroy_node()
        except Exception as exc:
            print(f"{node.get_name()}: destroy failed: {exc!r}", file=sys.stderr)
    rclpy.try_shutdown()


def run_nodes(compose: Callable[[], Sequence[Any]], args: Sequence[str] | None = None, *,
              name: str = "node", num_threads: int = 4) -> int:
    """init, ``compose()`` the nodes, spin until a signal, tear down. Exit 0 on a signal, 2 on a
    configuration error (the message names the file/parameter), 1 on any other start-up failure."""
    init(args)
    nodes: list[Any] = []
    executor = MultiThreadedExecutor(num_threads=num_threads)
    code = 0
    with StopOnSignal(executor.shutdown) as stop:
        try:
            nodes = list(compose())
            for n in nodes:
                executor.add_node(n)
            if not stop.event.is_set():
                executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except (ConfigError, ValueError, FileNotFoundError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            code = 2
        except Exception as exc:
            print(f"{name}: failed: {exc!r}", file=sys.stderr)
            code = 1
        finally:
            executor.shutdown()
            teardown(nodes)
    return code
