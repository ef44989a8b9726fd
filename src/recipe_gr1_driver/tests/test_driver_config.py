"""config.py and config/driver.yaml: defaults, ROS params layout, errors that name the key."""

import os
import subprocess
import sys

import pytest

from recipe_gr1_driver.config import DriverConfig, default_config_path, load_driver_config


def test_shipped_yaml_is_valid_and_equals_the_defaults():
    path = default_config_path()
    assert path.is_file(), path
    assert load_driver_config(path) == DriverConfig()


def test_camera_topics_follow_realsense_names():
    topics = DriverConfig().camera_topics()
    assert topics["head"] == ("/camera/head/depth/image_rect_raw", "/camera/head/depth/camera_info")
    assert topics["third_view"][0] == "/camera/third_view/depth/image_rect_raw"


def test_ints_are_accepted_for_floats_and_lists_round_trip():
    cfg = DriverConfig.from_dict({"state_rate_hz": 200, "left_hand_ports": [4000, 4001]})
    assert cfg.state_rate_hz == 200.0 and isinstance(cfg.state_rate_hz, float)
    assert DriverConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("d, match", [
    ({"state_rate": 100.0}, r"unknown driver config keys: \['state_rate'\]"),
    ({"state_rate_hz": "fast"}, "state_rate_hz: expected a number"),
    ({"state_rate_hz": 0}, "state_rate_hz: must be > 0"),
    ({"watchdog_timeout": float("nan")}, "watchdog_timeout: must be finite"),
    ({"backend": "ros2_control"}, "backend: 'ros2_control' is not one of"),
    ({"hand": "shadow"}, "hand: 'shadow'"),
    ({"backend": "gr1", "hand": "inspire"}, "only the 'fourier' hand"),
    ({"gr1_enable_on_start": 1}, "gr1_enable_on_start: expected true/false"),
    ({"gr1_server_ip": "robot.local"}, "gr1_server_ip: 'robot.local' is not an IP address"),
    ({"left_hand_ports": [2333]}, "left_hand_ports: expected"),
    ({"camera_names": ["head"]}, "camera_names .* camera_sim_names"),
    ({"camera_names": ["head", 3]}, "camera_names: expected a list of str"),
    ({"ramp_time": -1.0}, "ramp_time: must be >= 0"),
])
def test_bad_values_raise_naming_the_key(d, match):
    with pytest.raises(ValueError, match=match):
        DriverConfig.from_dict(d)


def test_bad_files_raise_with_the_path(tmp_path):
    bad = tmp_path / "driver.yaml"
    bad.write_text("gr1_driver:\n  ros__parameters:\n    max_step: -1\n")
    with pytest.raises(ValueError, match=r"driver.yaml: max_step: must be > 0"):
        load_driver_config(bad)
    bad.write_text("gr1_driver: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_driver_config(bad)
    bad.write_text("gr1_driver:\n  params: {}\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        load_driver_config(bad)
    plain = tmp_path / "plain.yaml"
    plain.write_text("backend: gr1\n")
    assert load_driver_config(plain).backend == "gr1"


@pytest.mark.parametrize("override, message", [
    ("backend:=foo", "backend: 'foo' is not one of"),
    ("max_step:=fast", "max_step: expected a number, got 'fast'"),
    ("sim_overlay:=/nonexistent/overlay.yaml", "sim overlay file not found"),
])
def test_node_exits_with_a_message_naming_the_bad_parameter(override, message):
    import driver_testing

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(driver_testing.ROOT / "src" / p) for p in ("recipe_common", "recipe_sim", "recipe_gr1_driver")])}
    r = subprocess.run([sys.executable, "-m", "recipe_gr1_driver.node", "--ros-args", "-p", override],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
