"""Build the GR1 upper-body + hands + table + object MuJoCo model from the manufacturer URDF.

The URDF is loaded with MuJoCo's URDF importer into an MjSpec and edited there:

* legs are dropped and the waist/head joints removed (the policy only moves arms and hands);
* URDF ``<mimic>`` equalities are replaced by named ``couple_<joint>`` joint equalities whose
  polycoef ``[b, k, 0, 0, 0]`` autotune can change in the compiled model (``eq_data``);
* hand collision meshes are replaced by capsules fitted to each finger link's mesh and a box for the
  palm (the Inspire URDF has no hand collision shapes at all); visual meshes stay for rendering
  (group 2, no collisions) unless ``visual=False``;
* collision filtering: geoms of one arm+hand never collide with each other (except the thumb against
  the index/middle fingers, as explicit pairs), the two sides collide with each other and everything
  collides with the environment (table, object, floor); the static torso/head collide with the hands
  but not with the arms (the shoulder cylinders overlap the torso's at rest);
* position actuators for the 26 actuated joints in robot_spec order, fingertip/palm sites, the table,
  one free object, lights and the two D435 cameras.

All tunable numbers are written by ``apply_params`` after compiling, so building with params and
applying params to an existing model give the same result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from recipe_common import robot_spec
from recipe_sim import assets
from recipe_sim.model.capsules import BoxFit, CapsuleFit, fit_box, fit_capsule, mat_to_quat, transform_points
from recipe_sim.model.params import ModelParams, solver_options
from recipe_sim.model.scene import SceneConfig, camera_quat, load_scene
from recipe_sim.objects import ObjectSpec

LEG_ROOT_BODIES = ("left_thigh_roll_link", "right_thigh_roll_link")
FINGERTIP_FINGERS = ("thumb", "index", "middle", "ring")
# Joint whose child link carries each fingertip (the most distal link of the finger).
_FINGERTIP_JOINT_SUFFIX = {"thumb": "thumb_distal", "index": "index_intermediate",
                           "middle": "middle_intermediate", "ring": "ring_intermediate"}

# Geom groups: what renderers filter on.
GROUP_ENV = 0  # table, floor, object
GROUP_VISUAL = 2  # robot visual meshes (no collisions)
GROUP_COLLISION = 3  # robot collision shapes

# contype/conaffinity bits. Two geoms collide if (ct1 & ca2) or (ct2 & ca1).
_ENV, _TORSO, _L_ARM, _R_ARM, _L_HAND, _R_HAND = 1, 2, 4, 8, 16, 32
COLLISION_BITS = {
    "env": (_ENV, _ENV | _TORSO),
    "torso": (_TORSO, 0),
    "left_arm": (_L_ARM, _ENV | _R_ARM | _R_HAND),
    "right_arm": (_R_ARM, _ENV | _L_ARM | _L_HAND),
    "left_hand": (_L_HAND, _ENV | _TORSO | _R_ARM | _R_HAND),
    "right_hand": (_R_HAND, _ENV | _TORSO | _L_ARM | _L_HAND),
}

HAND_FRICTION = 1.0
OBJECT_CONDIM = 4  # torsional friction keeps pinched objects from spinning in the grasp
# Coupling stiffness: the stiffest MuJoCo allows at 1/120 s (its "refsafe" rule clamps the time constant
# to >= 2 timesteps); the default 0.02 s lets fingers moving at 1 Hz lag their coupling by ~3e-3 rad.
COUPLING_SOLREF = (1 / 60, 1.0)
OFFSCREEN_SIZE = (1280, 960)


@dataclass
class ModelIndex:
    """Ids and addresses into a compiled model, plus the nominal values ``apply_params`` scales from."""

    hand: str
    actuator_ids: np.ndarray  # (26,) robot_spec.actuated_joint_names() order
    joint_ids: np.ndarray  # (36|38,) robot_spec.state_joint_names(hand) order
    qpos_adr: np.ndarray
    dof_adr: np.ndarray
    actuated_qpos_adr: np.ndarray  # (26,)
    actuated_dof_adr: np.ndarray  # (26,)
    coupled_qpos_adr: np.ndarray  # (10|12,) hand_coupled_joint_names(hand) order
    coupling_eq_ids: np.ndarray  # (10|12,) same order
    coupling_actuated_index: np.ndarray  # (10|12,) index into the 26 actuated joints that drives each
    link_body_ids: dict[str, int]
    object_body: int
    object_qpos_adr: int
    object_dof_adr: int
    object_geom: int
    fingertip_sites: np.ndarray  # (2, 4) [left/right] x [thumb, index, middle, ring]
    palm_sites: np.ndarray  # (2,)
    cameras: dict[str, int]
    table_geom: int
    floor_geom: int
    hand_geoms: np.ndarray  # collision geoms of both hands, robot_spec.SIDES order, as many per side
    hand_touch_adr: np.ndarray  # (2,) sensordata address: that hand's contacts with the object; -1: no object
    nominal_body_mass: np.ndarray = field(repr=False)
    nominal_body_inertia: np.ndarray = field(repr=False)
    nominal_jnt_range: np.ndarray = field(repr=False)
    nominal_qpos0: np.ndarray = field(repr=False)
    nominal_ctrlrange: np.ndarray = field(repr=False)
    object_spec: ObjectSpec | None = None

    @property
    def joint_names(self) -> list[str]:
        return robot_spec.state_joint_names(self.hand)


# --- hand collision shapes ------------------------------------------------------------------------------


def _hand_links(hand: str, side: str) -> tuple[str, list[str]]:
    """(palm link, finger links) of one hand, from the URDF joint tree."""
    links = assets.joint_links(hand)
    prefix = robot_spec.HAND_PREFIX[side]
    palm = links[f"{prefix}_index_proximal_joint"][0]
    names = robot_spec.hand_actuated_joint_names(side) + robot_spec.hand_coupled_joint_names(hand, side)
    return palm, [links[j][1] for j in names]


@functools.lru_cache(maxsize=4)
def fitted_hand_shapes(hand: str) -> dict[str, CapsuleFit | BoxFit]:
    """Collision primitive per hand link, in the link frame: a box for each palm, capsules for fingers."""
    spec = mujoco.MjSpec.from_string(assets.mujoco_urdf_text(hand))
    mesh_dir = Path(spec.meshdir)
    mesh_files = {m.name: mesh_dir / m.file for m in spec.meshes}
    mesh_scale = {m.name: np.array(m.scale) for m in spec.meshes}
    out: dict[str, CapsuleFit | BoxFit] = {}
    for side in robot_spec.SIDES:
        palm, fingers = _hand_links(hand, side)
        for link in [palm, *fingers]:
            body = spec.body(link)
            visual_meshes = [g for g in body.geoms if g.type == mujoco.mjtGeom.mjGEOM_MESH and _is_visual(g)]
            clouds = [transform_points(assets.read_stl(mesh_files[g.meshname]) * mesh_scale[g.meshname],
                                       g.pos, g.quat) for g in visual_meshes]
            if not clouds:
                raise ValueError(f"hand link {link!r} of the {hand} URDF has no visual mesh to fit")
            vertices = np.concatenate(clouds)
            out[link] = fit_box(vertices) if link == palm else fit_capsule(vertices)
    return out


# --- model building -------------------------------------------------------------------------------------


def _is_visual(geom: mujoco.MjsGeom) -> bool:
    """URDF <visual> elements import as geoms that collide with nothing."""
    return geom.contype == 0 and geom.conaffinity == 0


def _moving_side(body: mujoco.MjsBody, left: set[str], right: set[str]) -> str:
    """'left_arm'/'right_arm' for bodies moved by that arm, 'torso' for everything fixed to the pelvis."""
    while body is not None and body.name:
        if body.name in left:
            return "left_arm"
        if body.name in right:
            return "right_arm"
        body = body.parent
    return "torso"


def _set_collision(geom: mujoco.MjsGeom, kind: str) -> None:
    geom.contype, geom.conaffinity = COLLISION_BITS[kind]


def _strip_robot(spec: mujoco.MjSpec, hand: str, visual: bool) -> None:
    """Remove legs, unused joints, URDF mimics and hand collision meshes; sort geoms into groups."""
    for name in LEG_ROOT_BODIES:
        spec.delete(spec.body(name))
    keep = set(robot_spec.state_joint_names(hand))
    for joint in list(spec.joints):
        if joint.name not in keep:
            spec.delete(joint)
    for eq in list(spec.equalities):
        spec.delete(eq)

    children = assets.joint_child_links(hand)
    left = {children[j] for j in robot_spec.state_joint_names(hand) if j.startswith(("left_", "L_"))}
    right = {children[j] for j in robot_spec.state_joint_names(hand) if j.startswith(("right_", "R_"))}
    hand_links: set[str] = set()
    for side in robot_spec.SIDES:
        palm, fingers = _hand_links(hand, side)
        hand_links |= {palm, *fingers}

    for geom in list(spec.geoms):
        if _is_visual(geom):
            if geom.type != mujoco.mjtGeom.mjGEOM_MESH or not visual:
                spec.delete(geom)  # URDF tip markers, or physics-only build
            else:
                geom.group = GROUP_VISUAL
        elif geom.parent.name in hand_links:
            spec.delete(geom)  # replaced by fitted primitives
        else:
            geom.group = GROUP_COLLISION
            _set_collision(geom, _moving_side(geom.parent, left, right))
    if not visual:
        for mesh in list(spec.meshes):
            spec.delete(mesh)


def _site_name(side: str, what: str) -> str:
    return f"{side}_{what}"


def _add_hand_shapes(spec: mujoco.MjSpec, hand: str) -> None:
    shapes = fitted_hand_shapes(hand)
    links = assets.joint_links(hand)
    for side in robot_spec.SIDES:
        palm, fingers = _hand_links(hand, side)
        prefix = robot_spec.HAND_PREFIX[side]
        tip_links = {links[f"{prefix}_{_FINGERTIP_JOINT_SUFFIX[f]}_joint"][1]: f for f in FINGERTIP_FINGERS}
        for link in [palm, *fingers]:
            body = spec.body(link)
            fit = shapes[link]
            geom = body.add_geom(name=f"{link}_collision", group=GROUP_COLLISION,
                                 friction=[HAND_FRICTION, 0.005, 1e-4], rgba=[0.6, 0.6, 0.65, 1.0])
            _set_collision(geom, f"{side}_hand")
            if isinstance(fit, BoxFit):
                geom.type = mujoco.mjtGeom.mjGEOM_BOX
                geom.size = fit.half_extents
                geom.pos = fit.center
                geom.quat = mat_to_quat(fit.rotation)
                body.add_site(name=_site_name(side, "palm"), pos=fit.center, size=[0.006, 0, 0], group=4)
            else:
                a, b = fit.endpoints()
                geom.type = mujoco.mjtGeom.mjGEOM_CAPSULE
                geom.fromto = np.concatenate([a, b])
                geom.size = [fit.radius, 0, 0]
                if link in tip_links:
                    body.add_site(name=_site_name(side, f"{tip_links[link]}_tip"),
                                  pos=fit.far_tip(np.zeros(3)), size=[0.004, 0, 0], group=4)
        # Thumb against index/middle is the one same-hand contact that matters (pinch grasps).
        thumb = [links[j][1] for j in robot_spec.state_joint_names(hand)
                 if j.startswith(f"{prefix}_thumb") and "yaw" not in j]
        opposed = [links[j][1] for j in robot_spec.state_joint_names(hand)
                   if j.startswith((f"{prefix}_index", f"{prefix}_middle"))]
        for t in thumb:
            for f in opposed:
                spec.add_pair(geomname1=f"{t}_collision", geomname2=f"{f}_collision", condim=3,
                              friction=[HAND_FRICTION, HAND_FRICTION, 0.005, 1e-4, 1e-4])


def _add_actuators_and_couplings(spec: mujoco.MjSpec, hand: str) -> None:
    lower, upper = robot_spec.actuated_limits(hand)
    for name, lo, hi in zip(robot_spec.actuated_joint_names(), lower, upper, strict=True):
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = 1.0
        act.biasprm[:3] = [0.0, -1.0, 0.0]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [lo, hi]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_FALSE
    spec_hand = robot_spec.get_hand(hand)
    for side in robot_spec.SIDES:
        prefix = robot_spec.HAND_PREFIX[side]
        for c in spec_hand.couplings:
            u, a = f"{prefix}_{c.underactuated_suffix}_joint", f"{prefix}_{c.actuated_suffix}_joint"
            eq = spec.add_equality(name=f"couple_{u}", type=mujoco.mjtEq.mjEQ_JOINT, name1=u, name2=a)
            eq.data[:5] = [c.b, c.k, 0.0, 0.0, 0.0]
            eq.solref = COUPLING_SOLREF


def _add_environment(spec: mujoco.MjSpec, scene: SceneConfig, obj: ObjectSpec | None) -> None:
    world = spec.worldbody
    table = world.add_body(name="table", pos=scene.table_center)
    geom = table.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=scene.table_half_size,
                          friction=[scene.table_friction, 0.005, 1e-4], rgba=[0.55, 0.42, 0.3, 1.0],
                          group=GROUP_ENV)
    _set_collision(geom, "env")
    if scene.floor:
        floor = world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3.0, 3.0, 0.05],
                               rgba=[0.35, 0.37, 0.4, 1.0], group=GROUP_ENV)
        _set_collision(floor, "env")
    if obj is not None:
        pos = [*scene.spawn_xy, scene.table_top_height + obj.resting_height]
        yaw = scene.spawn_yaw
        body = world.add_body(name="object", pos=pos, quat=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        body.add_freejoint(name="object_free")
        shape = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
                 "sphere": mujoco.mjtGeom.mjGEOM_SPHERE}[obj.shape]
        size = list(obj.size) + [0.0] * (3 - len(obj.size))
        geom = body.add_geom(name="object_geom", type=shape, size=size, mass=obj.nominal_mass,
                             friction=[obj.nominal_friction, 0.005, 1e-4], condim=OBJECT_CONDIM,
                             rgba=list(obj.rgba), group=GROUP_ENV)
        _set_collision(geom, "env")
    for i, light in enumerate(scene.lights):
        world.add_light(name=f"light_{i}", pos=light.pos, dir=light.dir, diffuse=light.diffuse,
                        castshadow=False,
                        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL if light.directional
                        else mujoco.mjtLightType.mjLIGHT_SPOT)
    for cam in scene.cameras.values():
        parent = world if cam.parent == "world" else spec.body(cam.parent)
        if parent is None:
            raise ValueError(f"camera {cam.name!r}: parent body {cam.parent!r} is not in the model")
        parent.add_camera(name=cam.name, pos=cam.pos, quat=camera_quat(cam), fovy=cam.fovy_deg)


def _set_options(spec: mujoco.MjSpec) -> None:
    opts = solver_options()
    spec.option.cone = {"elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC,
                        "pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL}[opts.get("cone", "elliptic")]
    spec.option.integrator = {"implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
                              "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
                              "euler": mujoco.mjtIntegrator.mjINT_EULER,
                              "rk4": mujoco.mjtIntegrator.mjINT_RK4}[opts.get("integrator", "implicitfast")]
    for key in ("impratio", "tolerance"):
        if key in opts:
            setattr(spec.option, key, float(opts[key]))
    for key in ("iterations", "ls_iterations", "noslip_iterations"):
        if key in opts:
            setattr(spec.option, key, int(opts[key]))
    spec.visual.global_.offwidth, spec.visual.global_.offheight = OFFSCREEN_SIZE
    spec.compiler.fusestatic = True


def build_spec(hand: str = robot_spec.DEFAULT_HAND, obj: ObjectSpec | None = None, visual: bool = False,
               scene: SceneConfig | None = None) -> mujoco.MjSpec:
    """The edited MjSpec (before compiling). Tunable values are placeholders until ``apply_params``."""
    robot_spec.get_hand(hand)
    scene = scene or load_scene()
    spec = mujoco.MjSpec.from_string(assets.mujoco_urdf_text(hand))
    spec.modelname = f"gr1t2_{hand}_tabletop"
    spec.body("base_link").pos = scene.base_pos
    _strip_robot(spec, hand, visual)
    _add_hand_shapes(spec, hand)
    _add_actuators_and_couplings(spec, hand)
    _add_environment(spec, scene, obj)
    if obj is not None:
        _add_touch_sensors(spec, hand)
    _set_options(spec)
    return spec


def _touch_sensor_name(side: str) -> str:
    return f"touch_{side}_hand_object"


def _add_touch_sensors(spec: mujoco.MjSpec, hand: str) -> None:
    """One contact sensor per hand: does any geom of the hand (its palm link's subtree) touch the object?

    A sensor, not a scan of ``data.contact``, because the vectorized env steps with ``mujoco.rollout``,
    which returns sensor data but not contacts; the twin reads the same sensors, so a trial is judged
    from the same fact as a training episode. Naming the palm link keeps the compiler from fusing it into
    its parent (two more bodies); the dynamics are the same to round-off.
    """
    for side in robot_spec.SIDES:
        palm, _ = _hand_links(hand, side)
        spec.add_sensor(name=_touch_sensor_name(side), type=mujoco.mjtSensor.mjSENS_CONTACT,
                        objtype=mujoco.mjtObj.mjOBJ_XBODY, objname=palm,  # the palm link's subtree
                        reftype=mujoco.mjtObj.mjOBJ_GEOM, refname="object_geom",
                        intprm=[1, 0, 1])  # data "found" (bit 0): the number of contacts; no reduction


def build_model(hand: str = robot_spec.DEFAULT_HAND, obj: ObjectSpec | None = None,
                params: ModelParams | None = None, visual: bool = False,
                scene: SceneConfig | None = None) -> tuple[mujoco.MjModel, ModelIndex]:
    """Compile the scene and apply ``params`` (an overlay on the manufacturer defaults).

    ``visual=False`` drops the visual meshes: the model is then a few hundred kB, which matters when a
    vectorized env keeps one MjModel per env.
    """
    spec = build_spec(hand, obj, visual, scene)
    model = spec.compile()
    index = _make_index(model, hand, obj)
    apply_params(model, index, params)
    return model, index


def _id(model: mujoco.MjModel, obj_type: mujoco.mjtObj, name: str) -> int:
    i = mujoco.mj_name2id(model, obj_type, name)
    if i < 0:
        raise KeyError(f"{obj_type.name} {name!r} not found in the compiled model")
    return i


def _make_index(model: mujoco.MjModel, hand: str, obj: ObjectSpec | None) -> ModelIndex:
    J, A, B, S, G, C, E = (mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_ACTUATOR, mujoco.mjtObj.mjOBJ_BODY,
                           mujoco.mjtObj.mjOBJ_SITE, mujoco.mjtObj.mjOBJ_GEOM, mujoco.mjtObj.mjOBJ_CAMERA,
                           mujoco.mjtObj.mjOBJ_EQUALITY)
    state = robot_spec.state_joint_names(hand)
    actuated = robot_spec.actuated_joint_names()
    coupled = robot_spec.hand_coupled_joint_names(hand)
    joint_ids = np.array([_id(model, J, n) for n in state])
    act_joint_ids = np.array([_id(model, J, n) for n in actuated])
    spec_hand = robot_spec.get_hand(hand)
    drivers = [f"{robot_spec.HAND_PREFIX[s]}_{c.actuated_suffix}_joint" for s in robot_spec.SIDES
               for c in spec_hand.couplings]
    has_obj = obj is not None
    hand_links = [link for side in robot_spec.SIDES
                  for link in [_hand_links(hand, side)[0], *_hand_links(hand, side)[1]]]
    hand_geoms = [_id(model, G, f"{link}_collision") for link in hand_links]
    floor = mujoco.mj_name2id(model, G, "floor")
    return ModelIndex(
        hand=hand,
        actuator_ids=np.array([_id(model, A, n) for n in actuated]),
        joint_ids=joint_ids,
        qpos_adr=model.jnt_qposadr[joint_ids].copy(),
        dof_adr=model.jnt_dofadr[joint_ids].copy(),
        actuated_qpos_adr=model.jnt_qposadr[act_joint_ids].copy(),
        actuated_dof_adr=model.jnt_dofadr[act_joint_ids].copy(),
        coupled_qpos_adr=np.array([model.jnt_qposadr[_id(model, J, n)] for n in coupled]),
        coupling_eq_ids=np.array([_id(model, E, f"couple_{n}") for n in coupled]),
        coupling_actuated_index=np.array([actuated.index(d) for d in drivers]),
        link_body_ids={n: _id(model, B, n) for n in assets.moving_link_names(hand)},
        object_body=_id(model, B, "object") if has_obj else -1,
        object_qpos_adr=int(model.jnt_qposadr[_id(model, J, "object_free")]) if has_obj else -1,
        object_dof_adr=int(model.jnt_dofadr[_id(model, J, "object_free")]) if has_obj else -1,
        object_geom=_id(model, G, "object_geom") if has_obj else -1,
        fingertip_sites=np.array([[_id(model, S, _site_name(s, f"{f}_tip")) for f in FINGERTIP_FINGERS]
                                  for s in robot_spec.SIDES]),
        palm_sites=np.array([_id(model, S, _site_name(s, "palm")) for s in robot_spec.SIDES]),
        cameras={name: _id(model, C, name) for name in ("head_depth", "third_view")},
        table_geom=_id(model, G, "table"),
        floor_geom=floor,
        hand_geoms=np.array(hand_geoms),
        hand_touch_adr=np.array([int(model.sensor(_touch_sensor_name(s)).adr[0]) if has_obj else -1
                                 for s in robot_spec.SIDES]),
        nominal_body_mass=model.body_mass.copy(),
        nominal_body_inertia=model.body_inertia.copy(),
        nominal_jnt_range=model.jnt_range.copy(),
        nominal_qpos0=model.qpos0.copy(),
        nominal_ctrlrange=model.actuator_ctrlrange.copy(),
        object_spec=obj,
    )


# --- parameters on a compiled model ---------------------------------------------------------------------


def apply_params(model: mujoco.MjModel, index: ModelIndex, params: ModelParams | None) -> None:
    """Write ``params`` (overlaid on the manufacturer defaults) into a compiled model, in place.

    Values are absolute with respect to the nominal model, so applying twice is the same as once and an
    empty overlay restores the defaults. ``pos_offset`` shifts where a commanded position actually
    puts the joint (actuator bias ``kp * offset``) and the joint's reference ``qpos0``.
    """
    full = ModelParams.coerce(params, index.hand).effective()
    joints = full.resolved("joints")
    actuated_pos = {n: i for i, n in enumerate(robot_spec.actuated_joint_names())}
    for k, name in enumerate(index.joint_names):
        f = joints[name]
        jid, dof, qadr = index.joint_ids[k], index.dof_adr[k], index.qpos_adr[k]
        model.dof_damping[dof] = f.get("damping", 0.0)
        model.dof_armature[dof] = f.get("armature", 0.0)
        model.dof_frictionloss[dof] = f.get("frictionloss", 0.0)
        range_offset = np.asarray(f.get("range_offset", (0.0, 0.0)))
        model.jnt_range[jid] = index.nominal_jnt_range[jid] + range_offset
        offset = f.get("pos_offset", 0.0)
        model.qpos0[qadr] = index.nominal_qpos0[qadr] + offset
        if name in actuated_pos:
            aid = index.actuator_ids[actuated_pos[name]]
            kp, kd = f.get("kp", 0.0), f.get("kd", 0.0)
            model.actuator_gainprm[aid, 0] = kp
            model.actuator_biasprm[aid, :3] = (kp * offset, -kp, -kd)
            model.actuator_ctrlrange[aid] = index.nominal_ctrlrange[aid] + range_offset
            effort = f.get("effort_limit", 0.0)
            model.actuator_forcelimited[aid] = effort > 0
            model.actuator_forcerange[aid] = (-effort, effort) if effort > 0 else (0.0, 0.0)
    coupling = full.resolved("coupling")
    for name, eq in zip(robot_spec.hand_coupled_joint_names(index.hand), index.coupling_eq_ids, strict=True):
        c = coupling[name]
        model.eq_data[eq, :5] = (c["b"], c["k"], 0.0, 0.0, 0.0)
    links = full.resolved("links")
    for name, bid in index.link_body_ids.items():
        f = links[name]
        model.body_mass[bid] = index.nominal_body_mass[bid] * f.get("mass_scale", 1.0)
        model.body_inertia[bid] = index.nominal_body_inertia[bid] * f.get("inertia_scale", 1.0)
    model.opt.timestep = full.physics["timestep"]
    # Recompute what the compiler derives from masses/armature (subtree masses, inverse weights used
    # to scale constraint softness), so the edited model behaves like a freshly compiled one.
    mujoco.mj_setConst(model, mujoco.MjData(model))


def substeps(params: ModelParams | None = None, hand: str = robot_spec.DEFAULT_HAND) -> int:
    """Physics steps per policy step for ``params`` (defaults: 12 at 1/120 s = 10 Hz)."""
    return int(ModelParams.coerce(params, hand).effective().physics["substeps"])
