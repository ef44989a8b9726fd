"""The compiled GR1 model: joints, actuators, couplings, collision shapes, sites, reach and grasp strength."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest

from recipe_common import robot_spec
from recipe_sim import assets
from recipe_sim.model.builder import (
    FINGERTIP_FINGERS,
    GROUP_COLLISION,
    GROUP_VISUAL,
    build_model,
)
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import ObjectSpec

HANDS = ("fourier", "inspire")


@pytest.fixture(scope="module", params=HANDS)
def built(request):
    model, index = build_model(request.param)
    return request.param, model, index


def _hinge_names(model: mujoco.MjModel) -> list[str]:
    hinge = mujoco.mjtJoint.mjJNT_HINGE
    return [model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == hinge]


def test_joint_names_and_counts(built):
    hand, model, index = built
    names = _hinge_names(model)
    assert sorted(names) == sorted(robot_spec.state_joint_names(hand))
    assert len([n for n in names if n.startswith(("left_", "right_"))]) == 14
    assert len([n for n in names if n in robot_spec.hand_actuated_joint_names()]) == 12
    n_coupled = {"fourier": 10, "inspire": 12}[hand]
    assert len(robot_spec.hand_coupled_joint_names(hand)) == n_coupled
    assert model.neq == n_coupled
    # waist, head and legs are gone; leg bodies dropped entirely
    assert not any(("waist" in n or "head" in n or "hip" in n or "knee" in n) for n in names)
    bodies = [model.body(i).name for i in range(model.nbody)]
    assert not any("thigh" in b or "shank" in b or "foot" in b for b in bodies)
    assert model.nq == len(names) and model.nv == len(names)  # no object: nothing else moves
    assert [model.joint(j).name for j in index.joint_ids] == robot_spec.state_joint_names(hand)


def test_actuators_follow_robot_spec_order(built):
    hand, model, index = built
    actuated = robot_spec.actuated_joint_names()
    assert model.nu == 26
    assert [model.actuator(a).name for a in index.actuator_ids] == actuated
    driven = [model.joint(model.actuator_trnid[a, 0]).name for a in index.actuator_ids]
    assert driven == actuated
    lo, hi = robot_spec.actuated_limits(hand)
    np.testing.assert_allclose(model.actuator_ctrlrange[index.actuator_ids], np.stack([lo, hi], 1))
    lim = robot_spec.joint_limits(hand)
    for a, name in zip(index.actuator_ids, actuated, strict=True):
        assert model.actuator_gainprm[a, 0] > 0 and model.actuator_biasprm[a, 2] < 0  # kp and kd set
        if lim[name].effort > 0:  # arm joints: the URDF effort limit
            np.testing.assert_allclose(model.actuator_forcerange[a], [-lim[name].effort, lim[name].effort])
            assert model.actuator_forcelimited[a]


def test_physics_options(built):
    _, model, _ = built
    assert model.opt.timestep == pytest.approx(1 / 120)
    assert model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST


def test_coupling_holds_on_a_1hz_sine(built):
    """Each underactuated joint follows q_u = k q_a + b within 2e-3 rad while its driver tracks a sine.

    Fingers and thumb pitch sweep +-25% of their range at 1 Hz (up to 2.5 rad/s); the thumb yaw stays
    open so the thumb does not press on the fingers (contact forces would bend any coupling).
    """
    hand, model, index = built
    data = mujoco.MjData(model)
    lo, hi = robot_spec.actuated_limits(hand)
    hand_slice = slice(14, 26)
    mid, amp = (lo + hi)[hand_slice] / 2, 0.25 * (hi - lo)[hand_slice]
    thumb_yaw = [0, 6]
    mid[thumb_yaw], amp[thumb_yaw] = robot_spec.hand_open_closed(hand)[0][0], 0.0
    eq = model.eq_data[index.coupling_eq_ids]
    drivers = index.coupling_actuated_index
    worst = 0.0
    for step in range(360):  # 3 s
        t = step * model.opt.timestep
        data.ctrl[index.actuator_ids[hand_slice]] = mid + amp * np.sin(2 * np.pi * 1.0 * t)
        mujoco.mj_step(model, data)
        if t > 0.5:
            q_a = data.qpos[index.actuated_qpos_adr][drivers]
            q_u = data.qpos[index.coupled_qpos_adr]
            worst = max(worst, float(np.max(np.abs(q_u - (eq[:, 0] + eq[:, 1] * q_a)))))
    assert worst < 2e-3, f"coupling error {worst:.2e} rad"
    # and the drivers really followed the sine (to within the PD lag)
    q_hand = data.qpos[index.actuated_qpos_adr][hand_slice]
    np.testing.assert_allclose(q_hand, data.ctrl[index.actuator_ids[hand_slice]], atol=0.12)


def test_collision_shapes_are_primitives(built):
    hand, model, index = built
    assert model.nmesh == 0  # physics-only build keeps no meshes
    for g in range(model.ngeom):
        assert model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH
    types = model.geom_type[index.hand_geoms]
    assert np.sum(types == mujoco.mjtGeom.mjGEOM_BOX) == 2  # one palm per hand
    n_links = 2 * (6 + len(robot_spec.get_hand(hand).couplings))
    assert np.sum(types == mujoco.mjtGeom.mjGEOM_CAPSULE) == n_links
    assert np.all(model.geom_group[index.hand_geoms] == GROUP_COLLISION)
    radii = model.geom_size[index.hand_geoms[types == mujoco.mjtGeom.mjGEOM_CAPSULE], 0]
    assert np.all((radii > 0.003) & (radii < 0.025)), radii


def test_visual_build_keeps_meshes_without_collisions():
    model, _ = build_model("fourier", visual=True)
    assert model.nmesh > 0
    mesh_geoms = np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_MESH)
    assert len(mesh_geoms) > 20
    assert np.all(model.geom_contype[mesh_geoms] == 0) and np.all(model.geom_conaffinity[mesh_geoms] == 0)
    assert np.all(model.geom_group[mesh_geoms] == GROUP_VISUAL)


def test_no_contacts_at_rest_and_thumb_meets_index(built):
    hand, model, index = built
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    assert data.ncon == 0
    # Fully closed, the thumb lands on the index finger: the explicit thumb-finger pairs work.
    closed = robot_spec.hand_normalized_to_rad(np.ones(6), hand)
    data.ctrl[index.actuator_ids[14:20]] = closed
    mujoco.mj_step(model, data, nstep=240)
    pairs = {(model.geom(c.geom1).name, model.geom(c.geom2).name) for c in data.contact[:data.ncon]}
    assert any("thumb" in a + b and "index" in a + b for a, b in pairs), pairs


def _urdf_tip_offsets(hand: str) -> dict[str, np.ndarray]:
    """Fingertip marker positions the URDF gives (``*_tip_joint`` origin in the finger's last link)."""
    root = ET.parse(assets.urdf_path(hand)).getroot()
    out = {}
    for joint in root.iter("joint"):
        name = joint.attrib["name"]
        if name.endswith("_tip_joint"):
            out[joint.find("parent").attrib["link"]] = np.array(
                [float(v) for v in joint.find("origin").attrib["xyz"].split()])
    return out


def test_fingertip_sites_sit_at_the_finger_ends(built):
    """Sites come from the fitted capsules; the URDF's own tip markers are an independent check."""
    hand, model, index = built
    markers = _urdf_tip_offsets(hand)
    assert index.fingertip_sites.shape == (2, 4) and index.palm_sites.shape == (2,)
    for s, side in enumerate(robot_spec.SIDES):
        for f, finger in enumerate(FINGERTIP_FINGERS):
            site = index.fingertip_sites[s, f]
            assert model.site(site).name == f"{side}_{finger}_tip"
            body = model.body(model.site_bodyid[site]).name
            offset = markers[body]
            assert np.linalg.norm(model.site_pos[site] - offset) < 0.015, (body, model.site_pos[site], offset)


def _ik(model, data, index, side, target, direction, init):
    """Damped least squares on palm position plus finger direction (palm -> middle fingertip)."""
    s = robot_spec.SIDES.index(side)
    arm = slice(7 * s, 7 * s + 7)
    qadr, dadr = index.actuated_qpos_adr[arm], index.actuated_dof_adr[arm]
    lo, hi = robot_spec.actuated_limits(index.hand)
    palm, tip = index.palm_sites[s], index.fingertip_sites[s, 2]
    jp, jr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    mujoco.mj_resetData(model, data)
    data.qpos[qadr] = init
    for _ in range(150):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        d = data.site_xpos[tip] - data.site_xpos[palm]
        d /= np.linalg.norm(d)
        err = np.concatenate([target - data.site_xpos[palm], 0.3 * np.cross(d, direction)])
        mujoco.mj_jacSite(model, data, jp, jr, palm)
        jac = np.vstack([jp[:, dadr], 0.3 * jr[:, dadr]])
        dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
        data.qpos[qadr] = np.clip(data.qpos[qadr] + 0.5 * dq, lo[arm], hi[arm])
    mujoco.mj_kinematics(model, data)
    d = data.site_xpos[tip] - data.site_xpos[palm]
    angle = np.degrees(np.arccos(np.clip(d @ direction / np.linalg.norm(d), -1, 1)))
    return float(np.linalg.norm(target - data.site_xpos[palm])), float(angle)


def test_grasp_poses_over_the_table_are_reachable():
    """Either hand reaches palm poses above objects near the spawn point, fingers forward or down."""
    model, index = build_model("fourier")
    data = mujoco.MjData(model)
    scene = load_scene()
    top = scene.table_top_height
    directions = {"forward": np.array([1.0, 0.0, -0.3]), "down": np.array([0.3, 0.0, -1.0])}
    failures = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        inits = [np.array([-0.5, 0.3 * sign, 0, -1.2, 0, 0, 0]),
                 np.array([-0.8, 0.0, 0.5 * sign, -1.5, -1.0 * sign, 0, 0]),
                 np.array([-1.0, 0.2 * sign, -0.5 * sign, -0.8, 0.5 * sign, 0, 0])]
        for x in (0.25, 0.32):
            for y in (0.0, 0.1 * sign, 0.2 * sign):
                for z in (top + 0.06, top + 0.12):
                    for dname, direction in directions.items():
                        direction = direction / np.linalg.norm(direction)
                        target = np.array([x, y, z])
                        best = min((_ik(model, data, index, side, target, direction, q0) for q0 in inits),
                                   key=lambda r: r[0] + r[1] / 1000)
                        if best[0] > 0.01 or best[1] > 10.0:
                            failures.append((side, x, y, round(z, 2), dname, best))
    assert not failures, failures
    assert 0.25 <= scene.spawn_xy[0] <= 0.32 and abs(scene.spawn_xy[1]) <= 0.2  # spawn point is inside it


def test_fingers_hold_a_heavy_low_friction_object():
    """A 0.1 kg cylinder at friction 0.5 (the randomization's worst case) stays in a closed hand."""
    obj = ObjectSpec("probe", "cylinder", (0.025, 0.05), mass_range=(0.1, 0.1), friction_range=(0.5, 0.5))
    model, index = build_model("fourier", obj=obj)
    data = mujoco.MjData(model)
    a, dof = index.object_qpos_adr, index.object_dof_adr
    # In front of the hanging left palm, axis across the fingers; held in place while the hand closes.
    hold = np.array([0.02, 0.175, 0.72, np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0])
    closed = robot_spec.hand_normalized_to_rad(np.array([0.6, 1, 1, 1, 1, 1]), "fourier")
    for k in range(120):
        data.ctrl[index.actuator_ids[14:20]] = min(1.0, k / 60) * closed
        mujoco.mj_step(model, data)
        data.qpos[a:a + 7], data.qvel[dof:dof + 6] = hold, 0.0
    mujoco.mj_step(model, data, nstep=600)  # 5 s under gravity
    palm = data.site_xpos[index.palm_sites[0]]
    assert data.xpos[index.object_body][2] > hold[2] - 0.03  # did not fall
    assert np.linalg.norm(data.xpos[index.object_body] - palm) < 0.1
    assert data.ncon >= 3


def test_unknown_hand_is_rejected():
    with pytest.raises(ValueError, match="unknown hand"):
        build_model("shadow")


def test_collision_filter_matrix(built):
    """Same-side robot geoms never collide (except the explicit thumb pairs), the sides collide with each
    other and with the environment, and the static torso/head with the hands but not the arms."""
    _, model, index = built

    def collide(a: int, b: int) -> bool:
        ct, ca = model.geom_contype, model.geom_conaffinity
        return bool((ct[a] & ca[b]) or (ct[b] & ca[a]))

    name = {model.geom(g).name: g for g in range(model.ngeom)}
    left_hand, right_hand = index.hand_geoms[0], index.hand_geoms[len(index.hand_geoms) // 2]
    left_arm, torso = name["left_upper_arm_yaw_link.STL"], name["torso_link.STL"]
    assert not collide(left_hand, index.hand_geoms[1]) and not collide(left_hand, left_arm)
    assert collide(left_hand, right_hand) and collide(left_arm, right_hand)
    assert not collide(torso, left_arm) and collide(torso, right_hand)
    for g in (left_hand, right_hand, left_arm, torso):
        assert collide(g, index.table_geom)
    # explicit pairs: per hand, each thumb link (without the yaw base) x index/middle proximal+distal
    assert model.npair == 2 * 4 * {"fourier": 2, "inspire": 3}[index.hand]


def test_touch_sensors_see_a_hand_on_the_object_and_not_the_table():
    """The builder's contact sensors (box_lift's success): which hand touches the object, and only a hand."""
    from recipe_sim.objects import load_catalog

    model, index = build_model("fourier", obj=load_catalog().objects["lift_box"])
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)  # the box rests on the table at reset, the hands at their zero pose
    assert data.sensordata[index.hand_touch_adr].tolist() == [0.0, 0.0]
    left_palm = data.site_xpos[index.palm_sites[0]].copy()
    data.qpos[index.object_qpos_adr : index.object_qpos_adr + 3] = left_palm  # the box around the left palm
    mujoco.mj_forward(model, data)
    assert (data.sensordata[index.hand_touch_adr] > 0).tolist() == [True, False]  # contacts found
    _, no_object = build_model("fourier", obj=None)
    assert no_object.hand_touch_adr.tolist() == [-1, -1]
