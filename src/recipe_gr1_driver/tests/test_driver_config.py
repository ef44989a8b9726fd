"""config.py and config/driver.yaml: defaults, ROS params layout, errors that name the key."""

import dataclasses
import os
import subprocess
import sys

import pytest

from recipe_common.config import ConfigError
from recipe_gr1_driver.config import (
    DriverConfig,
    check_params_file,
    default_config_path,
    load_driver_config,
    params_files,
)


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


def test_every_numeric_field_has_a_range():
    from recipe_gr1_driver.config import BOUNDS

    numeric = {f.name for f in dataclasses.fields(DriverConfig)
               if isinstance(getattr(DriverConfig(), f.name), int | float)
               and not isinstance(getattr(DriverConfig(), f.name), bool)}
    assert numeric == set(BOUNDS)
    for key, bounds in BOUNDS.items():
        bounds.check(getattr(DriverConfig(), key), key)  # the defaults are inside


@pytest.mark.parametrize("d, match", [
    ({"max_step": 1e9}, r"max_step: must be <= 0.5 \(allowed \(0, 0.5\] rad per control step\), got 1e\+09"),
    ({"state_rate_hz": 1e6}, r"state_rate_hz: must be <= 1000 \(allowed \(0, 1000\] Hz\)"),
    ({"arm_velocity_scale": 1.5}, r"arm_velocity_scale: must be <= 1"),
    ({"camera_width": 100000, "camera_height": 10}, r"camera_width: must be <= 1280"),
    ({"sim_seed": -1}, r"sim_seed: must be >= 0"),
    ({"gr1_server_port": 0}, r"gr1_server_port: must be >= 1"),
    ({"max_stp": 0.1}, r"keys: \['max_stp'\] \(did you mean 'max_stp' -> 'max_step'\?\)"),
])
def test_out_of_range_values_name_the_allowed_range(d, match):
    with pytest.raises(ConfigError, match=match):
        DriverConfig.from_dict(d)


P = "gr1_driver:\n  ros__parameters:\n"


def _params(tmp_path, text: str):
    path = tmp_path / "driver.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, match", [
    ("", r"the file is empty"),
    ("gr1_driver: [1, 2\n", r"malformed YAML"),
    ("gr1_drivr:\n  ros__parameters:\n    backend: gr1\n",
     r"top-level key 'gr1_drivr' is not this node's name \(did you mean 'gr1_driver'\?\)"),
    (f"{P}    max_stp: 0.1\n", r"driver.yaml: unknown driver config keys: \['max_stp'\]"),
    (f"{P}    max_step: 1e9\n", r"driver.yaml: max_step: must be <= 0.5"),
    (f"{P}    max_step: 1.0e12\n", r"max_step: must be <= 0.5"),  # read as a number, not a string
    ("gr1_driver:\n  parameters: {}\n", r"expected 'gr1_driver: ros__parameters:'"),
])
def test_params_file_errors_name_the_file_and_key(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        check_params_file(_params(tmp_path, text))


def test_params_file_node_keys_that_select_the_driver(tmp_path):
    for key in ("gr1_driver", "/gr1_driver", "/robot/gr1_driver", "/**"):
        cfg = check_params_file(_params(tmp_path, f"{key}:\n  ros__parameters:\n    backend: gr1\n"))
        assert cfg.backend == "gr1", key
    assert params_files(["prog", "--ros-args", "-p", "a:=1", "--params-file", "x.yaml", "--", "--params-file",
                         "not-ros.yaml", "--ros-args", "--params-file", "y.yaml"]) == ["x.yaml", "y.yaml"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_params_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text, message", [
    ("gr1_drivr:\n  ros__parameters:\n    backend: gr1\n", "key 'gr1_drivr' is not this node's name"),
    ("", "the file is empty"),
    ("gr1_driver: [1, 2\n", "malformed YAML"),
    (f"{P}    max_step: 1e9\n", "max_step: must be <= 0.5"),
    (f"{P}    watchdog_timeot: 1.0\n", "unknown driver config keys: ['watchdog_timeot']"),
])
def test_node_refuses_a_bad_params_file_before_starting(tmp_path, text, message):
    import driver_testing

    path = _params(tmp_path, text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(driver_testing.ROOT / "src" / p) for p in ("recipe_common", "recipe_sim", "recipe_gr1_driver")])}
    args = [sys.executable, "-m", "recipe_gr1_driver.node", "--ros-args", "--params-file", str(path)]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and str(path) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "starting backend" not in r.stdout + r.stderr


def test_unknown_parameter_overrides_are_refused():
    from recipe_gr1_driver.config import check_params_files, param_override_names

    args = ["prog", "--ros-args", "-p", "max_step:=0.1", "--param", "gr1_driver:ramp_time:=1.0",
            "-r", "__ns:=/robot", "--log-level", "debug"]
    assert param_override_names(args) == ["max_step", "ramp_time"]
    check_params_files(args)
    with pytest.raises(ConfigError, match=r"unknown driver parameter 'max_stepp' \(did you mean 'max_step'"):
        check_params_files(["prog", "--ros-args", "-p", "max_stepp:=0.1"])
