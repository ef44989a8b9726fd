"""Robot self-filter: render the robot's own collision geometry from the current joint states into a camera.

The hand closing on the object would otherwise merge with it in any depth segmentation. As MoveIt's
robot_self_filter does, the robot is drawn where the joint states say it is and those pixels are
removed: a pixel belongs to the robot when the rendered robot is there and the measured surface is not
clearly in front of it (an object held in front of the fingers stays). The geometry is the MuJoCo
model's collision shapes (capsules, cylinders, boxes), inflated by ``padding_m`` so calibration error,
joint-state latency and the difference to the real links' outline do not leave a rim of robot pixels.

This is the one module of the perception node that needs MuJoCo and the robot model (recipe_sim):
both are imported when a ``RobotSelfFilter`` is built, so the node starts without them when the filter is
off. Rendering runs on one thread that owns the OpenGL context (EGL binds a context to a thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from recipe_common import frames, robot_spec
from recipe_common.cameras import Intrinsics
from recipe_perception.extrinsics import MJ_TO_OPTICAL
from recipe_perception.hand_attachment import HandPose

ROBOT_GROUP = 3  # recipe_sim.model.builder.GROUP_COLLISION: the robot's collision shapes
NO_ROBOT = np.inf


class RobotSelfFilter:
    """Renders the robot's (padded) collision shapes at given joint positions into one camera's image."""

    def __init__(
        self,
        cam_to_base: np.ndarray,
        intrinsics: Intrinsics,
        hand: str = robot_spec.DEFAULT_HAND,
        padding_m: float = 0.0,
    ) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco's first import: headless rendering
        import mujoco

        from recipe_sim.model.builder import build_model

        self._mj = mujoco
        self.intrinsics = intrinsics
        self.hand = hand
        self.padding_m = float(padding_m)
        model, _ = build_model(hand, obj=None, visual=False)
        self.model = model
        self.data = mujoco.MjData(model)
        self._inflate(padding_m)
        scalar = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        self._qpos_adr = {
            model.joint(j).name: int(model.jnt_qposadr[j])
            for j in range(model.njnt)
            if int(model.jnt_type[j]) in scalar
        }
        self.joint_names = robot_spec.state_joint_names(hand)
        missing = [n for n in self.joint_names if n not in self._qpos_adr]
        if missing:
            raise ValueError(f"robot model lacks joints {missing}")
        # The model places base_link at config/scene.yaml's robot.base_pos, axes along the world's (the
        # compiler fuses the static base into the world body, so it has no body of its own to ask).
        self._base_pos = frames.base_pos()
        self._base_rot = np.eye(3)
        self._palm_sites = {
            side: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"{side}_palm")
            for side in robot_spec.SIDES
        }
        if min(self._palm_sites.values()) < 0:
            raise ValueError("the robot model has no left_palm/right_palm sites")
        self._hand_adr = {
            side: np.array([self._qpos_adr[n] for n in robot_spec.hand_actuated_joint_names(side)])
            for side in robot_spec.SIDES
        }
        self._cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "third_view")
        if self._cam < 0 or model.cam_bodyid[self._cam] != 0:
            raise ValueError("the robot model has no world-mounted 'third_view' camera to place")
        self.set_camera(cam_to_base, intrinsics)
        self._lock = threading.Lock()
        self._gl = ThreadPoolExecutor(max_workers=1, thread_name_prefix="self-filter-gl")
        self._renderer = self._gl.submit(self._make_renderer).result()
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 0
        self._option.geomgroup[ROBOT_GROUP] = 1
        self._option.sitegroup[:] = 0
        self._far = None

    # -------------------------------------------------------------------------------- setup
    def _inflate(self, pad: float) -> None:
        mj, m = self._mj, self.model
        for g in range(m.ngeom):
            if m.geom_group[g] != ROBOT_GROUP:
                continue
            t = int(m.geom_type[g])
            if t in (int(mj.mjtGeom.mjGEOM_CAPSULE), int(mj.mjtGeom.mjGEOM_SPHERE)):
                m.geom_size[g, 0] += pad
            elif t == int(mj.mjtGeom.mjGEOM_CYLINDER):
                m.geom_size[g, :2] += pad
            elif t == int(mj.mjtGeom.mjGEOM_BOX):
                m.geom_size[g, :3] += pad
            m.geom_rbound[g] += pad

    def set_camera(self, cam_to_base: np.ndarray, intrinsics: Intrinsics) -> None:
        """Place the render camera at the (calibrated) optical frame pose with the stream's intrinsics."""
        m = self.model
        t = np.asarray(cam_to_base, dtype=np.float64)
        rot_world = self._base_rot @ t[:3, :3] @ MJ_TO_OPTICAL
        pos_world = self._base_pos + self._base_rot @ t[:3, 3]
        quat = np.zeros(4)
        self._mj.mju_mat2Quat(quat, rot_world.reshape(-1))
        m.cam_pos[self._cam] = pos_world
        m.cam_quat[self._cam] = quat
        k = intrinsics
        # Intrinsics in "length" units of a sensor 1 mm per pixel; MuJoCo's principal point is the offset
        # of the image centre from the principal point (checked against projections in the tests).
        mm = 1e-3
        m.cam_resolution[self._cam] = (k.width, k.height)
        m.cam_sensorsize[self._cam] = (k.width * mm, k.height * mm)
        m.cam_intrinsic[self._cam] = (
            k.fx * mm,
            k.fy * mm,
            -(k.cx - (k.width - 1) / 2) * mm,
            -(k.cy - (k.height - 1) / 2) * mm,
        )
        m.cam_fovy[self._cam] = k.fovy_deg
        if (k.width > m.vis.global_.offwidth) or (k.height > m.vis.global_.offheight):
            raise ValueError(f"self-filter image {k.width}x{k.height} exceeds the offscreen buffer")
        self.intrinsics = k

    def _make_renderer(self) -> Any:
        r = self._mj.Renderer(self.model, self.intrinsics.height, self.intrinsics.width)
        r.enable_depth_rendering()
        return r

    # -------------------------------------------------------------------------------- use
    def set_joints(self, names: Sequence[str], positions: Sequence[float]) -> int:
        """Joint positions by name (a JointState); returns how many of the robot's joints were set."""
        n = 0
        for name, q in zip(names, positions, strict=False):
            adr = self._qpos_adr.get(name)
            if adr is not None and np.isfinite(q):
                self.data.qpos[adr] = q
                n += 1
        return n

    def set_joint_map(self, q: Mapping[str, float]) -> int:
        return self.set_joints(list(q), list(q.values()))

    def hand_poses(self) -> list[HandPose]:
        """Both palms' poses (base frame) and finger closures at the joints last set."""
        mj = self._mj
        with self._lock:
            mj.mj_kinematics(self.model, self.data)
            out = []
            for side, site in self._palm_sites.items():
                pos = self.data.site_xpos[site] - self._base_pos
                rot = self.data.site_xmat[site].reshape(3, 3).copy()
                q = self.data.qpos[self._hand_adr[side]]
                closure = robot_spec.hand_rad_to_normalized(q, self.hand)[2:]  # index..pinky
                out.append(
                    HandPose(
                        side,
                        self._base_rot.T @ pos,
                        self._base_rot.T @ rot,
                        float(np.clip(np.mean(closure), 0.0, 1.0)),
                    )
                )
        return out

    def robot_depth(self) -> np.ndarray:
        """(H, W) float32 z-depth (m) of the padded robot along the optical axis; inf where no robot."""
        with self._lock:
            self._mj.mj_kinematics(self.model, self.data)
            self._mj.mj_camlight(self.model, self.data)  # camera poses (not part of mj_kinematics)
            depth = self._gl.submit(self._render).result()
        far = float(self.model.stat.extent * self.model.vis.map.zfar)
        out = depth.astype(np.float32, copy=False)
        out[out >= 0.99 * far] = NO_ROBOT
        return out

    def _render(self) -> np.ndarray:
        self._renderer.update_scene(self.data, camera=self._cam, scene_option=self._option)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._gl.submit(self._renderer.close).result()
            self._renderer = None
        self._gl.shutdown(wait=True)

    def __enter__(self) -> RobotSelfFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def robot_mask(depth_m: np.ndarray, robot_depth: np.ndarray, margin_m: float = 0.03) -> np.ndarray:
    """Pixels explained by the robot: the robot is drawn there and the surface is not clearly in front of it.

    ``depth_m`` and ``robot_depth`` share one resolution; holes (NaN) under the robot count as robot.
    """
    if depth_m.shape != robot_depth.shape:
        raise ValueError(f"depth {depth_m.shape} and robot render {robot_depth.shape} differ in size")
    drawn = np.isfinite(robot_depth)
    with np.errstate(invalid="ignore"):
        in_front = depth_m < robot_depth - margin_m
    return drawn & ~in_front
