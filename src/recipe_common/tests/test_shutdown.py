"""Stopping processes: RosRunner's ordered stop on SIGINT/SIGTERM, deferred signals, NodeProcess cleanup."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from recipe_common.node_process import NodeProcess
from recipe_common.ros.shutdown import StopSignals, deferred_signals

RUNNER_SCRIPT = textwrap.dedent("""
    import sys, time
    from rclpy.node import Node
    from recipe_common.ros.shutdown import RosRunner

    class Ticker(Node):
        def __init__(self):
            super().__init__("shutdown_test_ticker")
            self.ticks = 0
            self.create_timer(0.01, self.tick)
        def tick(self):
            self.ticks += 1
        def stop(self):
            # runs while the context is still valid: logging and publishing still work here
            self.get_logger().info(f"stopping after {self.ticks} ticks")
            print("node stop ran", flush=True)

    with RosRunner(sys.argv) as ros:
        node = Ticker()
        ros.add(node, stop=node.stop)
        print("spinning", flush=True)
        ros.spin()
    print("exited cleanly", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_ros_process_stops_in_order_and_exits_0(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-c", RUNNER_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "spinning"
        time.sleep(0.3)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "node stop ran" in out and "exited cleanly" in out
    assert "Traceback" not in out and "RCLError" not in out and "context is not valid" not in out


def test_stop_signals_count_and_third_one_forces_exit(tmp_path):
    script = textwrap.dedent("""
        import time
        from recipe_common.ros.shutdown import StopSignals
        s = StopSignals().install()
        print("ready", flush=True)
        while not s.requested:
            time.sleep(0.01)
        print("requested", flush=True)
        time.sleep(30)  # a stop that hangs
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "requested"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert proc.poll() is None  # the second one is only reported
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "already stopping" in err and "forced exit" in err and "File " in err  # the stacks


@pytest.fixture()
def default_sigint():
    """Python's own SIGINT handler, whatever this process inherited (a background job starts with
    SIGINT ignored, and so would every signal test here)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_deferred_signals_deliver_after_the_block(default_sigint):
    with pytest.raises(KeyboardInterrupt):
        finished = False
        with deferred_signals():
            signal.raise_signal(signal.SIGINT)
            finished = True  # not interrupted
        raise AssertionError("the deferred SIGINT was lost")  # pragma: no cover
    assert finished
    stop = StopSignals().install()
    try:
        with deferred_signals():
            signal.raise_signal(signal.SIGTERM)
            assert not stop.requested
        assert stop.requested and stop.signum == signal.SIGTERM
    finally:
        stop.restore()


def test_a_signal_while_the_main_thread_holds_an_events_lock_does_not_deadlock():
    """A wake-up that sets an Event, the signal landing while Event.wait holds that event's lock (the
    hang seen in the suite). The handler must not take the lock; the wake-up thread sets the event once
    the lock is free."""
    import threading

    event = threading.Event()
    stop = StopSignals().install()
    stop.on_request(event.set)
    try:
        def signal_inside_wait() -> None:
            with event._cond:  # what Event.wait holds between entering and leaving its condition
                stop._on_signal(signal.SIGINT, None)  # the handler, as if the signal landed here

        worker = threading.Thread(target=signal_inside_wait, daemon=True)
        worker.start()
        worker.join(timeout=5.0)
        assert not worker.is_alive(), "the signal handler deadlocked on the event's lock"
        assert stop.requested and stop.signum == signal.SIGINT
        assert event.wait(timeout=5.0)  # the wake-up ran once the lock was free
    finally:
        stop.restore()
    assert stop._waker is None  # restore ended the wake-up thread


def test_node_process_always_ends_what_it_started(tmp_path: Path):
    stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); " \
               "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    proc = NodeProcess([sys.executable, "-c", stubborn], tmp_path / "stubborn.log", stop_timeout=0.5)
    _wait_for_output(proc, "up")
    code = proc.stop()
    assert not proc.alive() and proc.escalated == "SIGKILL" and code != 0
    assert "Fatal Python error" in proc.output() or code == -signal.SIGKILL  # stacks printed on SIGABRT
    polite_script = ("import signal, time; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "print('up', flush=True); time.sleep(60)")
    polite = NodeProcess([sys.executable, "-c", polite_script], tmp_path / "polite.log")
    _wait_for_output(polite, "up")
    assert polite.stop() != 0 and polite.escalated is None  # KeyboardInterrupt: exit 1, but no escalation
    with NodeProcess([sys.executable, "-c", polite_script], tmp_path / "ctx.log") as ctx:
        _wait_for_output(ctx, "up")
    assert ctx.proc.poll() is not None


def _wait_for_output(proc: NodeProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in proc.output(), proc.output()
