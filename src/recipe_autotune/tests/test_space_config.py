"""Parameter space and config/autotune.yaml: parsing, validation errors, unit mapping, overlay values."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from recipe_autotune.config import ConfigError, config_from_dict, default_config_path, load_config
from recipe_autotune.space import ParameterSpace, SpaceError
from recipe_common import robot_spec
from recipe_sim.model.params import ModelParams


@pytest.fixture(scope="module")
def raw_config() -> dict:
    return yaml.safe_load(default_config_path().read_text())


@pytest.fixture(scope="module")
def base() -> ModelParams:
    return ModelParams.defaults("fourier")


def _space(params: list[dict], hand: str = "fourier") -> ParameterSpace:
    return ParameterSpace.from_config({"g": {"parameters": params}}, hand)


def test_default_config_loads_and_matches_model_defaults(base):
    config = load_config()
    assert set(config.space.groups) >= {
        "arm_pd",
        "arm_dynamics",
        "inertia",
        "limits_offsets",
        "hand_coupling",
    }
    config.space.check_against(base)  # every scale parameter has a non-zero manufacturer value
    x = config.space.manufacturer_values(base)
    params = config.space.to_params(x, base)
    # the manufacturer point of the space reproduces the manufacturer model exactly
    for path in (
        "joints.left_shoulder_pitch_joint.kp",
        "joints.right_elbow_pitch_joint.damping",
        "coupling.L_index_intermediate_joint.k",
    ):
        assert params.get(path) == pytest.approx(base.get(path))


def test_scale_parameter_multiplies_each_joints_own_value(base):
    space = _space(
        [
            {
                "name": "kp",
                "path": "joints.*_wrist_*_joint.kp",
                "mode": "scale",
                "range": [0.5, 2.0],
                "sampling": "log",
            }
        ]
    )
    overlay = space.overlay_dict(np.array([1.5]), base)
    assert set(overlay["joints"]) == {n for n in robot_spec.arm_joint_names() if "_wrist_" in n}
    for joint, fields in overlay["joints"].items():
        assert fields["kp"] == pytest.approx(1.5 * base.get(f"joints.{joint}.kp"))
    # wrist yaw and roll have different manufacturer gains: a pattern key could not express this
    assert overlay["joints"]["left_wrist_yaw_joint"]["kp"] != overlay["joints"]["left_wrist_roll_joint"]["kp"]


def test_offset_and_absolute_modes_and_list_fields(base):
    space = _space(
        [
            {
                "name": "shift",
                "path": "joints.left_shoulder_pitch_joint.range_offset",
                "mode": "offset",
                "range": [-0.1, 0.1],
            },
            {
                "name": "b",
                "path": "coupling.?_index_intermediate_joint.b",
                "mode": "offset",
                "range": [-0.05, 0.05],
            },
            {
                "name": "mass",
                "path": ["links.left_*_link.mass_scale", "links.right_*_link.mass_scale"],
                "mode": "absolute",
                "range": [0.8, 1.25],
                "sampling": "log",
            },
        ]
    )
    x = np.array([0.02, -0.01, 1.1])
    params = space.to_params(x, base)
    assert params.get("joints.left_shoulder_pitch_joint.range_offset") == pytest.approx([0.02, 0.02])
    assert params.get("coupling.R_index_intermediate_joint.b") == pytest.approx(-0.01)
    assert params.get("links.left_lower_arm_pitch_link.mass_scale") == pytest.approx(1.1)
    # link patterns pass through unchanged: arm links only (hand links are L_*/R_*)
    assert set(space.overlay_dict(x, base)["links"]) == {"left_*_link", "right_*_link"}


def test_unit_mapping_round_trip_linear_and_log():
    space = _space(
        [
            {
                "name": "a",
                "path": "joints.left_elbow_pitch_joint.kp",
                "mode": "scale",
                "range": [0.5, 2.0],
                "sampling": "log",
            },
            {
                "name": "b",
                "path": "joints.left_elbow_pitch_joint.pos_offset",
                "mode": "offset",
                "range": [-0.1, 0.1],
            },
        ]
    )
    u = np.random.default_rng(0).uniform(size=(50, 2))
    assert np.allclose(space.to_unit(space.from_unit(u)), u)
    # log sampling: the middle of the unit range is the geometric mean
    assert space.from_unit(np.array([0.5, 0.5]))[0] == pytest.approx(1.0)
    assert space.from_unit(np.array([0.5, 0.5]))[1] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (
            {"name": "x", "path": "joints.nonexistent_joint.kp", "mode": "scale", "range": [0.5, 2]},
            "matches no joints",
        ),
        (
            {
                "name": "x",
                "path": "joints.left_elbow_pitch_joint.stiffness",
                "mode": "scale",
                "range": [0.5, 2],
            },
            "unknown field 'stiffness'",
        ),
        ({"name": "x", "path": "physics.timestep", "mode": "scale", "range": [0.5, 2]}, "not of the form"),
        (
            {"name": "x", "path": "joints.left_elbow_pitch_joint.kp", "mode": "scale", "range": [1.2, 2]},
            "must contain 1",
        ),
        (
            {"name": "x", "path": "joints.left_elbow_pitch_joint.kp", "mode": "scale", "range": [2, 0.5]},
            "must be below high",
        ),
        (
            {
                "name": "x",
                "path": "joints.left_elbow_pitch_joint.pos_offset",
                "mode": "offset",
                "range": [-1, 1],
                "sampling": "log",
            },
            "log sampling needs low > 0",
        ),
        (
            {"name": "x", "path": "joints.left_elbow_pitch_joint.kp", "mode": "multiply", "range": [0.5, 2]},
            "mode",
        ),
        (
            {
                "name": "x",
                "path": "joints.left_elbow_pitch_joint.kp",
                "mode": "scale",
                "range": [0.5, float("nan")],
            },
            "finite number",
        ),
        (
            {
                "name": "x",
                "path": "joints.left_elbow_pitch_joint.range_offset",
                "mode": "scale",
                "range": [0.5, 2],
            },
            "only mode 'offset'",
        ),
        (
            {
                "name": "x",
                "path": "joints.left_elbow_pitch_joint.kp",
                "mode": "scale",
                "range": [0.5, 2],
                "foo": 1,
            },
            "unknown key",
        ),
    ],
)
def test_invalid_parameter_declarations_name_the_problem(param, message):
    with pytest.raises(SpaceError, match=message) as info:
        _space([param])
    assert "groups.g" in str(info.value)


def test_overlapping_parameters_are_rejected():
    with pytest.raises(SpaceError, match=r"both set joints\.left_elbow_pitch_joint\.kp"):
        _space(
            [
                {"name": "a", "path": "joints.*_elbow_pitch_joint.kp", "mode": "scale", "range": [0.5, 2]},
                {"name": "b", "path": "joints.left_elbow_pitch_joint.kp", "mode": "scale", "range": [0.5, 2]},
            ]
        )


def test_scale_of_a_zero_manufacturer_value_is_rejected(base):
    space = _space(
        [{"name": "b", "path": "coupling.L_index_intermediate_joint.b", "mode": "scale", "range": [0.5, 2]}]
    )
    with pytest.raises(SpaceError, match="manufacturer value is 0"):
        space.check_against(base)


def test_group_selection(raw_config):
    space = config_from_dict(raw_config).space
    sub = space.select(["hand_coupling"])
    assert sub.groups == ["hand_coupling"] and sub.dim < space.dim
    assert space.select([]) is space
    with pytest.raises(SpaceError, match="unknown parameter group"):
        space.select(["no_such_group"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(format="v0"), "format"),
        (lambda c: c.update(hand="shadow"), "hand"),
        (lambda c: c["search"].update(population=0), "search.population"),
        (lambda c: c["search"].update(population=2.5), "search.population"),
        (lambda c: c["calibration"].update(duration_s=-1), "calibration.duration_s"),
        (
            lambda c: c["calibration"].update(home={"left_knee_joint": 0.1}),
            "calibration.home.left_knee_joint",
        ),
        (lambda c: c["calibration"].update(signals=["noise"]), "calibration.signals"),
        (
            lambda c: c["calibration"].update(approach_waypoints=[{"left_knee_joint": 1.0}]),
            r"calibration.approach_waypoints\[0\].left_knee_joint",
        ),
        (lambda c: c["evaluation"].update(joints="some"), "evaluation.joints"),
        (lambda c: c["search"].update(refiner="bayes"), "search.refiner"),
        (lambda c: c.update(extra=1), "unknown top-level"),
        (lambda c: c["calibration"].update(margn_rad=0.1), "calibration: unknown key"),
        (lambda c: c.pop("groups"), "groups"),
    ],
)
def test_invalid_config_raises_clear_error(raw_config, mutate, message):
    raw = copy.deepcopy(raw_config)
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_load_config_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
