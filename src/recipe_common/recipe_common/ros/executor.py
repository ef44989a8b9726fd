"""rclpy's MultiThreadedExecutor with a fix for its busy loop (rclpy issue 1452, fixed upstream in PR 1547).

In rclpy 9.1 (kilted), a callback handed to the thread pool but not yet started is yielded again by the
next wait, so the spin thread re-polls without blocking, holding the GIL, and the pool's workers barely
get to run it. Seen here: the driver's 100 Hz control timer fell to a few Hz while commands streamed in,
with the spin thread at ~95% CPU. Waiting (briefly, GIL released) until the dispatched callback has
started breaks that loop. Every multi-threaded node process of this workspace spins with this class.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.executors import MultiThreadedExecutor as _RclpyMultiThreadedExecutor

_START_WAIT_S = 0.005  # a worker normally picks a task up within microseconds; this bounds a stall


class MultiThreadedExecutor(_RclpyMultiThreadedExecutor):
    def _spin_once_impl(self, timeout_sec: float | None = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        super()._spin_once_impl(timeout_sec, wait_condition)
        futures = self._futures
        if not futures:
            return
        task = futures[-1]
        deadline = time.monotonic() + _START_WAIT_S
        while not (task.executing() or task.done()) and time.monotonic() < deadline:
            time.sleep(0.0001)  # releases the GIL so a worker can start the task
