"""The policy node in its own process, real rclpy: start/stop/reset, commands, HOLDING reasons, SIGINT."""

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import Point
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from recipe_common import robot_spec
from recipe_common.node_process import NodeProcess
from recipe_common.ros.executor import MultiThreadedExecutor
from recipe_interfaces.msg import ObjectState, PolicyStatus
from recipe_interfaces.srv import StartEpisode

ROOT = Path(__file__).resolve().parents[3]
POLICY = "grasp_reach_can_medium"
READY = np.zeros(robot_spec.ACTION_DIM)
READY[[0, 3, 7, 10]] = [0.27, -1.78, 0.27, -1.78]


class Peer:
    """Plays the driver (joint states) and perception (object state); records what the node sends."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("policy_test_peer")
        self.js = self.node.create_publisher(JointState, "/joint_states", 10)
        self.obj = self.node.create_publisher(ObjectState, "/object_state", 10)
        self.commands: list[JointState] = []
        self.status: list[PolicyStatus] = []
        self.node.create_subscription(JointState, "/joint_commands", self.commands.append, 10)
        self.node.create_subscription(PolicyStatus, "/policy/status", self.status.append, 10)
        self.object_status = ObjectState.STATUS_TRACKING
        self.publish_object = True
        self.node.create_timer(0.02, self._joints)
        self.node.create_timer(0.2, self._object)

    def _joints(self) -> None:
        msg = JointState(name=robot_spec.state_joint_names(), position=[*READY, *[0.0] * 10])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.js.publish(msg)

    def _object(self) -> None:
        if not self.publish_object:
            return
        msg = ObjectState(position=Point(x=0.3, y=0.08, z=0.06), confidence=1.0, status=self.object_status)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = "base_link"
        self.obj.publish(msg)

    def call(self, srv, name, request, timeout=20.0):
        client = self.node.create_client(srv, name)
        assert client.wait_for_service(timeout_sec=timeout), name
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        return future.result()

    def wait_status(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status and pred(self.status[-1]):
                return self.status[-1]
            time.sleep(0.05)
        raise AssertionError(f"status never matched; last: {self.status[-1] if self.status else None}")


@pytest.fixture()
def node_and_peer(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src" / p) for p in ("recipe_common", "recipe_policy", "recipe_sim")]
        + [os.environ.get("PYTHONPATH", "")]))
    proc = NodeProcess([sys.executable, "-m", "recipe_policy.node", "--ros-args", "--params-file",
                        str(ROOT / "config" / "policy_node.yaml"), "-p", f"policy:={POLICY}",
                        "-p", "max_object_age_s:=0.6"], tmp_path / "policy.log", env=env)
    rclpy.init()
    peer = Peer()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(peer.node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        yield proc, peer
    finally:
        executor.shutdown()
        spin.join(timeout=5.0)
        peer.node.destroy_node()
        rclpy.try_shutdown()
        proc.stop()


def test_episode_commands_holds_with_reasons_and_stops(node_and_peer):
    proc, peer = node_and_peer
    peer.wait_status(lambda s: s.state == PolicyStatus.STATE_IDLE, timeout=60.0)
    wrong_task = StartEpisode.Request(task="box_lift", goal=[0.3, 0.1, 0.2])
    res = peer.call(StartEpisode, "/policy/start", wrong_task)
    assert not res.success and "grasp_reach" in res.message
    bad_final = StartEpisode.Request(goal=[0.3, 0.1, 0.2], final_goal=[0.3, 0.1])
    res = peer.call(StartEpisode, "/policy/start", bad_final)
    assert not res.success and "final_goal must have 3 numbers" in res.message
    # The node refuses to start until the peer's first joint state and object position reached it
    # (discovery can take seconds on a busy host); those refusals are the only ones allowed here.
    deadline = time.monotonic() + 30.0
    while True:
        res = peer.call(StartEpisode, "/policy/start", StartEpisode.Request(goal=[0.3, 0.1, 0.2]))
        waiting = "no object position yet" in res.message or "no joint state yet" in res.message
        if res.success or time.monotonic() > deadline or not waiting:
            break
        time.sleep(0.2)
    assert res.success, res.message
    peer.wait_status(lambda s: s.state == PolicyStatus.STATE_RUNNING)
    n = len(peer.commands)
    deadline = time.monotonic() + 10.0  # about 1 s at 10 Hz; a busy host may stall the node for a while
    while len(peer.commands) <= n + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(peer.commands) > n + 3
    cmd = peer.commands[-1]
    assert list(cmd.name) == robot_spec.actuated_joint_names() and np.isfinite(cmd.position).all()

    # A busy host can stall the peer's 50 Hz joint states past their 0.2 s limit: that is a HOLDING too, with
    # its own reason, and it ends when they resume. The test waits for the hold whose reason it caused.
    peer.object_status = ObjectState.STATUS_LOST
    peer.wait_status(lambda s: s.state == PolicyStatus.STATE_HOLDING and "LOST" in s.message)
    time.sleep(0.3)
    n = len(peer.commands)
    time.sleep(0.5)
    assert len(peer.commands) == n  # HOLDING sends nothing: the driver holds the pose

    peer.object_status = ObjectState.STATUS_TRACKING
    peer.wait_status(lambda s: s.state == PolicyStatus.STATE_RUNNING)
    peer.publish_object = False
    peer.wait_status(lambda s: s.state == PolicyStatus.STATE_HOLDING and "object position is" in s.message
                     and "old" in s.message)

    assert peer.call(Trigger, "/policy/stop", Trigger.Request()).success
    peer.wait_status(lambda s: s.state == PolicyStatus.STATE_IDLE)
    assert peer.call(Trigger, "/policy/reset", Trigger.Request()).success

    t0 = time.monotonic()
    code = proc.stop()
    assert code == 0, proc.output()
    assert time.monotonic() - t0 < 5.0
    assert "Traceback" not in proc.output()


def test_a_bad_parameter_stops_the_node_with_its_name(tmp_path):
    import subprocess

    paths = [str(ROOT / "src" / p) for p in ("recipe_common", "recipe_policy")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]))
    for args, message in ((["-p", "polcy:=x"], "unknown parameter(s) ['polcy']"),
                          (["-p", "policy:=no_such_policy"], "no_such_policy"),
                          (["-p", f"policy:={POLICY}", "-p", "command_rate_hz:=0.0"], "command_rate_hz")):
        r = subprocess.run([sys.executable, "-m", "recipe_policy.node", "--ros-args", "--params-file",
                            str(ROOT / "config" / "policy_node.yaml"), *args],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr


def test_the_params_file_reads_outside_ros_as_the_node_validates_it(tmp_path):
    from recipe_common.config import ConfigError
    from recipe_policy.node import PolicyNodeConfig

    cfg = PolicyNodeConfig.load()
    assert cfg.task == "grasp_reach" and cfg.inference_steps >= 0
    bad = tmp_path / "policy_node.yaml"
    bad.write_text("policy:\n  ros__parameters:\n    policy: x\n    infrence_steps: 4\n")
    with pytest.raises(ConfigError, match=r"policy_node.yaml.*unknown key 'infrence_steps'"):
        PolicyNodeConfig.load(bad)
    bad.write_text("policy:\n  ros__parameters:\n    policy: x\n    inference_steps: -1\n")
    with pytest.raises(ConfigError, match=r"policy_node.yaml.*inference_steps"):
        PolicyNodeConfig.load(bad)
    bad.write_text("policy:\n  ros__parameters:\n    policy: x\n    initial_noise_scale: 2.0\n")
    with pytest.raises(ConfigError, match=r"policy_node.yaml.*initial_noise_scale"):
        PolicyNodeConfig.load(bad)
    # the sampler keywords the node (and the deploy benchmark's sim side) load the policy with
    ok = tmp_path / "ok.yaml"
    ok.write_text("policy:\n  ros__parameters:\n    policy: x\n    inference_steps: 2\n")
    assert PolicyNodeConfig.load(ok).sampling() == {"inference_steps": 2, "initial_noise_scale": None,
                                                    "timestep_spacing": None}
    ok.write_text("policy:\n  ros__parameters:\n    policy: x\n    initial_noise_scale: 0.0\n"
                  "    timestep_spacing: trailing\n")
    assert PolicyNodeConfig.load(ok).sampling() == {"inference_steps": 0, "initial_noise_scale": 0.0,
                                                    "timestep_spacing": "trailing"}
    bad.write_text("policy:\n  ros__parameters:\n    policy: x\n    timestep_spacing: uniform\n")
    with pytest.raises(ConfigError, match=r"policy_node.yaml.*timestep_spacing"):
        PolicyNodeConfig.load(bad)
