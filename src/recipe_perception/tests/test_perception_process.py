"""The perception node as its users start it: next to the driver's twin, and as a process (Ctrl-C)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from perception_testing import Rig

from recipe_common import frames
from recipe_common.paths import config_path, workspace_dir
from recipe_interfaces.msg import ObjectState

ROOT = workspace_dir()


def test_with_the_driver_twin_in_process():
    """The driver's sim backend publishes the twin's cameras and joint states; perception finds the can."""
    pytest.importorskip("recipe_sim.twin")
    from rclpy.parameter import Parameter

    from recipe_gr1_driver.node import DriverNode

    def driver(ctx):
        return [
            DriverNode(
                context=ctx,
                parameter_overrides=[
                    Parameter("backend", value="sim"),
                    Parameter("sim_object", value="can_medium"),
                    Parameter("camera_rate_hz", value=5.0),
                ],
            )
        ]

    rig = Rig({}, extra_nodes=driver)  # the default configuration: self-filter on, 5 Hz
    try:
        tracked = rig.wait_for(
            lambda: [m for m in rig.states if m.status == ObjectState.STATUS_TRACKING], 30.0
        )
        assert tracked, [m.status for m in rig.states][-10:]
        twin = rig.nodes[0].backend._twin
        truth = frames.from_world(twin.object_position(), frames.BASE)
        m = tracked[-1]
        assert (
            np.linalg.norm([m.position.x - truth[0], m.position.y - truth[1], m.position.z - truth[2]]) < 0.01
        )
        assert rig.wait_for(lambda: rig.images["head"], 10.0)  # the head's policy image from the twin's head
        img = rig.images["head"][-1]
        assert (img.width, img.height, img.encoding) == (84, 84, "32FC1")
    finally:
        rig.close()


_HIDE_SIM = textwrap.dedent("""
    import importlib.abc, sys
    class _Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("recipe_sim", "mujoco"):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
            return None
    sys.meta_path.insert(0, _Hide())
""")


def _start(tmp_path: Path, code: str, name: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{name}.log"
    f = open(log, "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ)
    )
    return proc, log


def _wait_log(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if text in log.read_text():
            return True
        time.sleep(0.2)
    return text in log.read_text()


@pytest.mark.parametrize("hidden", [True, False], ids=["recipe_sim hidden, self-filter off", "default"])
def test_process_starts_and_stops_on_ctrl_c(tmp_path, hidden):
    args = ["--ros-args", "--params-file", str(config_path("perception.yaml"))]
    if hidden:
        args += ["-p", "self_filter:=false"]
    code = (_HIDE_SIM if hidden else "") + textwrap.dedent(f"""
        import sys
        from recipe_perception.node import main
        if {hidden!r}:
            assert "recipe_sim" not in sys.modules and "mujoco" not in sys.modules
        sys.exit(main({args!r}))
    """)
    proc, log = _start(tmp_path, code, "perception")
    try:
        assert _wait_log(log, "perception up", proc, 60.0), log.read_text()
        assert _wait_log(log, "no depth frames", proc, 10.0), log.read_text()
        t0 = time.monotonic()
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        code_ = proc.wait(timeout=10.0)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
    assert code_ == 0, log.read_text()
    print(f"stopped {took:.2f} s after SIGINT")  # the contract is 2 s; a loaded CI host gets slack


def test_bad_configuration_is_a_clear_error(tmp_path):
    code = (
        "import sys\nfrom recipe_perception.node import main\n"
        "sys.exit(main(['--ros-args', '-p', 'segmenter:=sam3', '-p', 'self_filter:=false']))"
    )
    proc, log = _start(tmp_path, code, "bad")
    assert proc.wait(timeout=60) == 2
    assert "perception.segmenter must be one of ['depth', 'sam2'], got 'sam3'" in log.read_text()
