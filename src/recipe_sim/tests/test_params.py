"""ModelParams overlays: validation, resolution order, YAML round trips, apply_params on a compiled model."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recipe_common import robot_spec
from recipe_common.config import ConfigError
from recipe_sim.model.builder import apply_params, build_model
from recipe_sim.model.params import FORMAT, ModelParams, ParamsError


@pytest.fixture(scope="module")
def compiled():
    return build_model("fourier")


def _act(index, name):
    return index.actuator_ids[robot_spec.actuated_joint_names().index(name)]


def _dof(index, name):
    return index.dof_adr[index.joint_names.index(name)]


# --- defaults and lookup -----------------------------------------------------------------------------


def test_defaults_cover_every_joint_and_coupling():
    p = ModelParams.defaults("fourier")
    joints = p.resolve("joints")
    for name in robot_spec.actuated_joint_names():
        assert joints[name]["kp"] > 0 and joints[name]["kd"] > 0, name
    for name in robot_spec.state_joint_names("fourier"):
        assert "armature" in joints[name] and "damping" in joints[name], name
    for c in robot_spec.get_hand("fourier").couplings:
        assert p.get(f"coupling.L_{c.underactuated_suffix}_joint.k") == c.k
        assert p.get(f"coupling.R_{c.underactuated_suffix}_joint.b") == c.b
    assert p.get("joints.left_shoulder_pitch_joint.effort_limit") == robot_spec.joint_limits()[
        "left_shoulder_pitch_joint"].effort
    assert p.get("physics.timestep") == pytest.approx(1 / 120)
    assert p.get("physics.substeps") == 12
    inspire = ModelParams.defaults("inspire").resolve("coupling")
    assert sorted(inspire) == sorted(robot_spec.hand_coupled_joint_names("inspire"))


def test_overlay_fields_win_and_others_keep_defaults():
    base = ModelParams.defaults()
    p = ModelParams.from_dict({"joints": {"left_elbow_pitch_joint": {"damping": 2.5}}})
    assert p.get("joints.left_elbow_pitch_joint.damping") == 2.5
    assert p.get("joints.left_elbow_pitch_joint.kp") == base.get("joints.left_elbow_pitch_joint.kp")
    right = "joints.right_elbow_pitch_joint.damping"
    assert p.get(right) == base.get(right)


def test_patterns_resolve_in_order_and_merged_keys_move_last():
    p = ModelParams.from_dict({"joints": {"*_elbow_pitch_joint": {"kp": 10.0}, "left_*": {"kp": 20.0}}})
    assert p.get("joints.left_elbow_pitch_joint.kp") == 20.0  # later entry wins
    assert p.get("joints.right_elbow_pitch_joint.kp") == 10.0
    q = p.merged({"joints": {"*_elbow_pitch_joint": {"kp": 30.0}}})  # re-inserted at the end -> wins
    assert q.get("joints.left_elbow_pitch_joint.kp") == 30.0
    assert p.get("joints.left_elbow_pitch_joint.kp") == 20.0  # p itself unchanged (immutable)
    r = p.with_value("joints.*_elbow_pitch_joint.kd", 4.0)
    assert r.get("joints.*_elbow_pitch_joint.kd") == 4.0
    with pytest.raises(ParamsError, match="different values"):
        p.get("joints.*_elbow_pitch_joint.kp")  # left 20, right 10


def test_pattern_actuator_fields_skip_coupled_joints():
    p = ModelParams.from_dict({"joints": {"L_*": {"kp": 3.0, "damping": 0.02}}})
    resolved = p.resolve("joints")
    assert resolved["L_index_proximal_joint"]["kp"] == 3.0
    assert "kp" not in resolved["L_index_intermediate_joint"]
    assert resolved["L_index_intermediate_joint"]["damping"] == 0.02


# --- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"joints": {"left_knee_joint": {"kp": 1.0}}}, "unknown joint 'left_knee_joint'"),
        ({"joints": {"*_knee_*": {"kp": 1.0}}}, "pattern matches no joint"),
        ({"joints": {"left_elbow_pitch_joint": {"stiffness": 1.0}}}, "unknown field"),
        ({"joints": {"left_elbow_pitch_joint": {"kp": "high"}}}, "expected a number"),
        ({"joints": {"left_elbow_pitch_joint": {"kp": True}}}, "expected a number"),
        ({"joints": {"left_elbow_pitch_joint": {"kp": float("nan")}}}, "must be finite"),
        ({"joints": {"left_elbow_pitch_joint": {"damping": -1.0}}}, "must be >= 0"),
        ({"joints": {"left_elbow_pitch_joint": {"range_offset": [0.1]}}}, "list of 2 numbers"),
        ({"joints": {"L_index_intermediate_joint": {"kp": 1.0}}}, "need an actuator"),
        ({"joints": {"left_elbow_pitch_joint": 5}}, "expected a mapping"),
        ({"coupling": {"L_index_proximal_joint": {"k": 1.0}}}, "unknown coupled"),
        ({"coupling": {"L_index_intermediate_joint": {"k": float("inf")}}}, "must be finite"),
        ({"links": {"left_elbow_link": {"mass_scale": 1.1}}}, "unknown link"),
        ({"links": {"left_hand_yaw_link": {"mass_scale": 0.0}}}, "must be > 0"),
        ({"physics": {"timestep": 0.5}}, "too large"),
        ({"physics": {"substeps": 1.5}}, "expected an integer"),
        ({"physics": {"gravity": 1.0}}, "unknown field"),
        ({"format": "recipe_sim/params/v0"}, "params.format"),
        ({"hand": "shadow"}, "unknown hand"),
        ({"joint": {}}, "unknown top-level key"),
    ],
)
def test_invalid_overlays_raise_clear_errors(overlay, message):
    with pytest.raises(ConfigError, match=message):
        ModelParams.from_dict(overlay)


def test_errors_name_the_bad_key():
    with pytest.raises(ParamsError) as err:
        ModelParams.from_dict({"joints": {"right_wrist_roll_joint": {"armature": float("nan")}}})
    assert "joints.right_wrist_roll_joint.armature" in str(err.value)


def test_hand_mismatch_and_bad_paths():
    with pytest.raises(ParamsError, match="inspire"):
        ModelParams.from_dict({"hand": "inspire"}, hand="fourier")
    with pytest.raises(ParamsError, match="unknown coupled"):  # inspire-only joint on a fourier overlay
        ModelParams.from_dict({"coupling": {"L_thumb_intermediate_joint": {"k": 1.0}}}, hand="fourier")
    assert ModelParams.from_dict({"coupling": {"L_thumb_intermediate_joint": {"k": 1.5}}}, hand="inspire")
    p = ModelParams()
    for bad in ("joints", "joints.left_elbow_pitch_joint", "physics.gravity", "sensors.x.y"):
        with pytest.raises(ParamsError):
            p.get(bad)


# --- YAML round trips -----------------------------------------------------------------------------------


def test_yaml_round_trip(tmp_path):
    p = ModelParams.from_dict({
        "hand": "fourier",
        "joints": {"*_elbow_pitch_joint": {"kp": 60.0, "kd": 3.0}, "left_elbow_pitch_joint": {
            "armature": 0.01, "damping": 0.5, "frictionloss": 0.1, "range_offset": [-0.05, 0.02],
            "pos_offset": 0.01}},
        "coupling": {"L_index_intermediate_joint": {"k": 0.9, "b": 0.01}},
        "links": {"left_*_link": {"mass_scale": 1.2, "inertia_scale": 0.8}},
        "physics": {"timestep": 0.005, "substeps": 20},
    })
    path = tmp_path / "overlay.yaml"
    p.to_yaml(path)
    assert "format: " + FORMAT in path.read_text()
    q = ModelParams.from_yaml(path)
    assert q == p
    assert q.to_dict() == p.to_dict()
    assert list(q.joints) == list(p.joints)  # order survives (it decides pattern precedence)


_FIELD_VALUES = {
    "kp": st.floats(0.0, 500.0), "kd": st.floats(0.0, 20.0), "armature": st.floats(0.0, 0.1),
    "damping": st.floats(0.0, 5.0), "frictionloss": st.floats(0.0, 1.0), "pos_offset": st.floats(-0.1, 0.1),
    "range_offset": st.lists(st.floats(-0.1, 0.1), min_size=2, max_size=2),
}
_PATTERNS = ["*_wrist_*", "left_*", "[LR]_*_proximal*_joint"]
_JOINT_KEYS = st.sampled_from([*robot_spec.arm_joint_names(), *_PATTERNS])
_JOINT_FIELDS = st.fixed_dictionaries({}, optional=_FIELD_VALUES)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_JOINT_KEYS, _JOINT_FIELDS, min_size=1, max_size=4), st.floats(0.5, 1.5))
def test_random_overlays_round_trip_through_yaml(tmp_path, joints, scale):
    p = ModelParams.from_dict({"joints": joints, "links": {"right_*": {"mass_scale": scale}}})
    path = tmp_path / "p.yaml"
    p.to_yaml(path)
    q = ModelParams.from_yaml(path)
    assert q.resolve("joints") == p.resolve("joints")
    assert q.resolve("links") == p.resolve("links")


# --- apply_params on a compiled model -------------------------------------------------------------------


def test_apply_params_changes_the_compiled_fields(compiled):
    model, index = compiled
    elbow, jid = "left_elbow_pitch_joint", model.joint("left_elbow_pitch_joint").id
    dof, act = _dof(index, elbow), _act(index, elbow)
    body = index.link_body_ids["left_lower_arm_pitch_link"]
    eq = index.coupling_eq_ids[robot_spec.hand_coupled_joint_names().index("L_index_intermediate_joint")]
    nominal_range = model.jnt_range[jid].copy()
    mass0, inertia0 = model.body_mass[body], model.body_inertia[body].copy()
    overlay = {
        "joints": {elbow: {"kp": 55.0, "kd": 2.5, "armature": 0.07, "damping": 0.9, "frictionloss": 0.3,
                           "range_offset": [0.1, -0.2], "pos_offset": 0.02, "effort_limit": 12.0}},
        "coupling": {"L_index_intermediate_joint": {"k": 0.9, "b": 0.05}},
        "links": {"left_lower_arm_pitch_link": {"mass_scale": 1.5, "inertia_scale": 2.0}},
        "physics": {"timestep": 0.004},
    }
    try:
        apply_params(model, index, overlay)
        assert model.actuator_gainprm[act, 0] == 55.0
        np.testing.assert_allclose(model.actuator_biasprm[act, :3], [55.0 * 0.02, -55.0, -2.5])
        assert model.dof_armature[dof] == 0.07 and model.dof_damping[dof] == 0.9
        assert model.dof_frictionloss[dof] == 0.3
        shifted = nominal_range + np.array([0.1, -0.2])
        np.testing.assert_allclose(model.jnt_range[jid], shifted)
        np.testing.assert_allclose(model.actuator_ctrlrange[act], shifted)
        np.testing.assert_allclose(model.actuator_forcerange[act], [-12.0, 12.0])
        assert model.qpos0[index.qpos_adr[index.joint_names.index(elbow)]] == 0.02
        np.testing.assert_allclose(model.eq_data[eq, :5], [0.05, 0.9, 0, 0, 0])
        assert model.body_mass[body] == pytest.approx(1.5 * mass0)
        np.testing.assert_allclose(model.body_inertia[body], 2.0 * inertia0)
        assert model.opt.timestep == 0.004
    finally:
        apply_params(model, index, None)  # restore for the other tests
    assert model.actuator_gainprm[act, 0] == ModelParams.defaults().get(f"joints.{elbow}.kp")
    np.testing.assert_allclose(model.jnt_range[jid], nominal_range)
    assert model.body_mass[body] == pytest.approx(mass0)


def test_apply_params_matches_building_with_params(compiled):
    """Building with an overlay and applying it to a default model give the same numbers (no drift)."""
    model, index = compiled
    overlay = ModelParams.from_dict({"joints": {"*_shoulder_*": {"kp": 123.0, "damping": 2.0}},
                                     "links": {"L_*": {"mass_scale": 0.7}}})
    built, _ = build_model("fourier", params=overlay)
    try:
        apply_params(model, index, overlay)
        apply_params(model, index, overlay)  # idempotent
        for field in ("actuator_gainprm", "actuator_biasprm", "dof_damping", "dof_armature", "body_mass",
                      "body_inertia", "jnt_range", "eq_data", "dof_invweight0", "body_subtreemass"):
            np.testing.assert_allclose(getattr(model, field), getattr(built, field), err_msg=field)
    finally:
        apply_params(model, index, None)


def test_gains_change_the_dynamics(compiled):
    """A softer elbow (kp halved) lags more on the same step: the parameters reach the physics."""
    model, index = compiled
    elbow = "left_elbow_pitch_joint"
    qadr = index.qpos_adr[index.joint_names.index(elbow)]

    def response() -> float:
        data = mujoco.MjData(model)
        data.ctrl[_act(index, elbow)] = 0.4
        mujoco.mj_step(model, data, nstep=12)
        return float(data.qpos[qadr])

    stiff = response()
    try:
        half_kp = ModelParams.defaults().get(f"joints.{elbow}.kp") / 2
        apply_params(model, index, {"joints": {elbow: {"kp": half_kp}}})
        soft = response()
    finally:
        apply_params(model, index, None)
    assert 0 < soft < stiff < 0.45
    assert not math.isclose(soft, stiff, rel_tol=0.05)
