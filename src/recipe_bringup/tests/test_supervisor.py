"""The supervisor with stand-in processes: order, readiness, SIGINT fan-out, restarts, failures, SIGKILL."""

import os
import threading
import time
from pathlib import Path

import pytest
import rclpy

from recipe_bringup.stack import NodeDecl, ProcessDecl
from recipe_bringup.supervisor import GraphProbe, StackError, Supervisor
from recipe_common.ros.executor import MultiThreadedExecutor

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parents[2]


def fake(key: str, ready: str = "", required: bool = True, max_restarts: int = 0, **env: str) -> ProcessDecl:
    return ProcessDecl(key=key, package="recipe_bringup", executable="-", compose="fake_stack_node:main",
                       nodes=(NodeDecl(key, None),), ready=ready, required=required,
                       max_restarts=max_restarts, env=tuple(env.items()))


@pytest.fixture()
def probe():
    rclpy.init()
    node = rclpy.create_node("supervisor_probe")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    yield GraphProbe(node)
    executor.shutdown()
    spin.join(timeout=5.0)
    node.destroy_node()
    rclpy.try_shutdown()


def supervisor(procs, tmp_path, **kw):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return Supervisor(procs, ROOT / "config", tmp_path / "logs", env=env, **kw)


def test_processes_start_in_order_when_ready_and_stop_on_request(probe, tmp_path):
    sup = supervisor([fake("a", "topic:/sup_a", FAKE_TOPIC="/sup_a", FAKE_NAME="a"),
                      fake("b", "topic:/sup_b", FAKE_TOPIC="/sup_b", FAKE_NAME="b")], tmp_path)
    sup.start(probe)
    a, b = sup.children
    assert a.alive() and b.alive()
    sup.check()
    t0 = time.monotonic()
    codes = sup.stop()
    assert codes == {"b": 0, "a": 0} and list(codes) == ["b", "a"]  # reverse start order
    assert time.monotonic() - t0 < 6.0 and not sup.killed
    assert sup.stop() == codes  # idempotent


def test_a_required_process_that_dies_stops_the_stack_with_its_log(probe, tmp_path):
    sup = supervisor([fake("steady", "topic:/sup_s", FAKE_TOPIC="/sup_s", FAKE_NAME="s"),
                      fake("crash", FAKE_EXIT_AFTER="0.5", FAKE_EXIT_CODE="3")], tmp_path)
    sup.start(probe)
    time.sleep(1.5)
    with pytest.raises(StackError, match="crash exited with code 3") as err:
        sup.check()
    assert err.value.code == 1
    sup.stop()
    assert not any(c.alive() for c in sup.children)


def test_an_optional_process_is_restarted_up_to_its_limit(probe, tmp_path):
    starts = tmp_path / "starts.txt"
    sup = supervisor([fake("flaky", required=False, max_restarts=2, FAKE_EXIT_AFTER="0.2",
                           FAKE_STARTS=str(starts))], tmp_path)
    sup.start(probe)
    with pytest.raises(StackError, match="flaky exited"):
        for _ in range(100):
            time.sleep(0.1)
            sup.check()
    sup.stop()
    assert len(starts.read_text().split()) == 3  # the first start + 2 restarts


def test_a_configuration_error_at_start_up_is_exit_code_2(probe, tmp_path):
    sup = supervisor([fake("bad", "topic:/never", FAKE_EXIT_AFTER="0.3", FAKE_EXIT_CODE="2")], tmp_path,
                     ready_timeout=20.0)
    with pytest.raises(StackError, match="bad exited with code 2 while starting") as err:
        sup.start(probe)
    assert err.value.code == 2


def test_a_process_that_ignores_signals_is_killed_and_reported(probe, tmp_path):
    hung = fake("hung", "topic:/sup_h", FAKE_TOPIC="/sup_h", FAKE_NAME="h", FAKE_IGNORE_SIGINT="1")
    sup = supervisor([hung], tmp_path, stop_timeout=0.5)
    sup.start(probe)
    sup.stop()
    assert sup.killed == ["hung"] and not sup.children[0].alive()
