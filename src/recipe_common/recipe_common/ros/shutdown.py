"""Stopping a ROS process cleanly on Ctrl-C or SIGTERM: every node main of the workspace uses this.

rclpy's own signal handlers shut the context down from inside the signal, while callbacks may still
run and before the process has stopped its nodes; what follows is an ``RCLError: ... context is not
valid`` traceback, exit code 1, and whatever the process was finishing (a bag being closed, a robot
connection) is cut off. Python's default SIGINT handler is no better: ``KeyboardInterrupt`` can land
in the middle of any ``finally`` block.

Here a signal only *requests* the stop; the process then stops in a fixed order while its ROS
context is still valid:

1. the executor stops dispatching and waits for running callbacks,
2. each node's own stop (in reverse order of registration: a driver stops its backend, a recorder
   closes its bag),
3. nodes are destroyed, then rclpy is shut down (Fast DDS removes its /dev/shm files),
4. the process exits 0.

A second signal during the stop is reported and ignored; a third dumps every thread's stack and
exits at once (exit code 1), as does a stop that takes longer than ``force_after_s``, so a process of
ours can always be stopped without SIGKILL, and a hang leaves its stacks on stderr.

Usage::

    def main(args=None) -> int:
        with RosRunner(args) as ros:           # rclpy.init without rclpy's signal handlers
            node = DriverNode()                # a bad parameter raises here: the caller exits 2
            ros.add(node, stop=node.shutdown)
            ros.spin()                         # until SIGINT/SIGTERM or ros.request_stop()
        return 0
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORCE_AFTER_S = 10.0  # a stop that takes longer than this is a bug: dump stacks and exit
SPIN_PERIOD_S = 0.1  # the spin thread looks at the stop flag at least this often


class StopSignals:
    """SIGINT/SIGTERM set a flag (and run wake-up callbacks) instead of raising or killing.

    Install from the main thread (Python runs signal handlers only there). The handler does no I/O
    through Python file objects and takes no locks, so it cannot deadlock whatever the main thread
    was doing when the signal arrived. Wake-up callbacks (``on_request``) therefore do not run in the
    handler: it writes a byte to a pipe and a thread started at ``install`` runs them. They used to run
    in the handler, and one that set a ``threading.Event`` the main thread was waiting on deadlocked the
    process when the signal landed while ``Event.wait`` held the event's lock (a demo that ignored
    Ctrl-C, seen once in the suite).
    """

    def __init__(self, signals: Sequence[int] = STOP_SIGNALS, force_after: int = 3) -> None:
        self.signals = tuple(signals)
        self.force_after = force_after
        self.count = 0
        self.signum: int | None = None
        self._requested = False
        self._previous: dict[int, Any] = {}
        self._wakeups: list[Callable[[], None]] = []
        self._pipe: tuple[int, int] | None = None  # (read, write): the handler -> the wake-up thread
        self._waker: threading.Thread | None = None

    # ------------------------------------------------------------------ install / restore
    def install(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("StopSignals.install() must run in the main thread")
        if self._pipe is None:
            self._pipe = os.pipe()
            self._waker = threading.Thread(target=self._wake_loop, args=(self._pipe[0],),
                                           name="stop-wakeups", daemon=True)
            self._waker.start()
        for sig in self.signals:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        pipe, waker, self._pipe, self._waker = self._pipe, self._waker, None, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                os.write(pipe[1], b"q")
            if waker is not None:
                waker.join(timeout=1.0)
            for fd in pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _wake_loop(self, fd: int) -> None:
        """The wake-up thread: run the callbacks for each request the handler passes on ("q": quit)."""
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                return
            if data.replace(b"q", b""):
                self._run_wakeups()
            if b"q" in data:
                return

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    # ------------------------------------------------------------------ state
    @property
    def requested(self) -> bool:
        return self._requested

    def request(self) -> None:
        """Ask for the stop from code (a node that finished its job); same effect as a signal."""
        self._requested = True
        self._run_wakeups()

    def _run_wakeups(self) -> None:
        for wake in list(self._wakeups):
            wake()

    def on_request(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when a stop is requested (for a signal: on the wake-up thread, soon after)."""
        self._wakeups.append(wake)

    def wait(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        """Sleep until a stop is requested or ``timeout`` s pass; True when requested."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._requested:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._requested

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            self.signum = signum
            if self._pipe is None:  # not installed (called directly): nothing can hold a lock we need
                self.request()
                return
            self._requested = True
            with contextlib.suppress(OSError):  # no locks here: the wake-up thread runs the callbacks
                os.write(self._pipe[1], b"w")
            return
        name = signal.Signals(signum).name
        if self.count < self.force_after:
            _write_stderr(f"\n{name}: already stopping; send it {self.force_after - self.count} more "
                          f"time(s) to force an immediate exit\n")
            return
        _write_stderr(f"\n{name} x{self.count}: forced exit; stacks of every thread follow\n")
        faulthandler.dump_traceback(all_threads=True)
        os._exit(1)


def _write_stderr(text: str) -> None:
    """os.write, not print: a signal may arrive while the main thread is inside sys.stderr.write."""
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), text.encode())


@contextlib.contextmanager
def deferred_signals(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """Hold SIGINT/SIGTERM during a critical section (closing a file); deliver them when it ends.

    In the main thread the handlers are swapped for one that only records the signal; on exit the
    previous handlers come back and each recorded signal is raised again, so it does exactly what it
    would have done, only later (KeyboardInterrupt, StopSignals' request, or the default action).
    In another thread nothing is needed: Python runs signal handlers only in the main thread, so a
    signal cannot interrupt this one (the process may still end if the main thread exits; a caller
    that must finish should run in the main thread or be joined before the main thread returns).
    Handlers installed from C (getsignal() returns None) are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous: dict[int, Any] = {}
    for sig in signals:
        handler = signal.getsignal(sig)
        if handler is None:
            continue
        previous[sig] = handler
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


def init_ros(args: Sequence[str] | None = None, context: Any = None) -> None:
    """``rclpy.init`` without rclpy's signal handlers (see the module docstring)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=list(args) if args is not None else None, context=context,
               signal_handler_options=SignalHandlerOptions.NO)


class RosRunner:
    """One ROS process: init, spin until a stop request, then the ordered stop described above.

    ``RosRunner`` is a context manager; leaving the block (normally, on an exception, or after
    ``spin()`` returned) always runs the full stop. ``spin()`` runs the executor in a worker thread
    and keeps the main thread free for the signal handler, so a stop request is seen within
    ``poll`` s whatever the callbacks are doing.
    """

    def __init__(self, args: Sequence[str] | None = None, num_threads: int = 4,
                 force_after_s: float | None = FORCE_AFTER_S, executor: Any = None) -> None:
        self.args = args
        self.num_threads = num_threads
        self.force_after_s = force_after_s
        self.signals = StopSignals()
        self.executor = executor
        self._nodes: list[tuple[Any, Callable[[], None] | None]] = []
        self._spin_thread: threading.Thread | None = None
        self._spin_error: BaseException | None = None
        self._initialised = False

    # ------------------------------------------------------------------ setup
    def __enter__(self) -> RosRunner:
        self.signals.install()
        try:
            init_ros(self.args)
        except BaseException:
            self.signals.restore()
            raise
        self._initialised = True
        if self.executor is None:
            from recipe_common.ros.executor import MultiThreadedExecutor

            self.executor = MultiThreadedExecutor(num_threads=self.num_threads)
        return self

    def add(self, node: Any, stop: Callable[[], None] | None = None) -> Any:
        """Spin ``node``; at the end ``stop()`` runs (reverse order of add) before the node is destroyed."""
        self._nodes.append((node, stop))
        self.executor.add_node(node)
        return node

    @property
    def stop_requested(self) -> bool:
        return self.signals.requested

    def request_stop(self) -> None:
        self.signals.request()

    # ------------------------------------------------------------------ run
    def spin(self, timeout: float | None = None, poll: float = 0.05) -> None:
        """Spin until a stop request (signal or request_stop()), ``timeout`` s, or a spinning error."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.signals.requested and self._spin_thread is not None and self._spin_thread.is_alive():
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        if self._spin_error is not None:
            raise self._spin_error

    def start(self) -> None:
        """Start spinning in the background (for callers with their own main loop; see spin())."""
        if self._spin_thread is None:
            self._spin_thread = threading.Thread(target=self._spin, name="ros-spin", daemon=True)
            self._spin_thread.start()

    def _spin(self) -> None:
        # spin_once in a loop rather than spin(): the loop ends by itself within SPIN_PERIOD_S of a
        # stop request, so the executor is shut down only after nothing is waiting on it any more.
        try:
            while not self.signals.requested:
                self.executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        except BaseException as exc:
            if not self.signals.requested:
                self._spin_error = exc
                self.signals.request()

    # ------------------------------------------------------------------ stop
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    def close(self) -> None:
        """The ordered stop (idempotent). Signals stay captured until rclpy is shut down."""
        if not self._initialised:
            return
        self._initialised = False
        if self.force_after_s:
            faulthandler.dump_traceback_later(self.force_after_s, exit=True)
        try:
            self._stop_all()
        finally:
            if self.force_after_s:
                faulthandler.cancel_dump_traceback_later()
            self.signals.restore()

    def _stop_all(self) -> None:
        import rclpy

        errors: list[str] = []
        self.signals.request()  # ends the spin loop (if spin() was left by an exception, say)
        if self._spin_thread is not None:
            self._spin_thread.join(timeout=5.0)
        if self.executor is not None:
            try:
                self.executor.shutdown(timeout_sec=5.0)  # waits for callbacks still running in the pool
            except Exception as exc:
                errors.append(f"executor shutdown: {exc!r}")
        for node, stop in reversed(self._nodes):
            if stop is not None:
                try:
                    stop()
                except Exception as exc:
                    errors.append(f"{_node_name(node)} stop: {exc!r}")
            try:
                node.destroy_node()
            except Exception as exc:
                errors.append(f"{_node_name(node)} destroy: {exc!r}")
        self._nodes.clear()
        rclpy.try_shutdown()
        for e in errors:
            print(f"stop: {e}", file=sys.stderr)


def _node_name(node: Any) -> str:
    try:
        return str(node.get_name())
    except Exception:
        return type(node).__name__
