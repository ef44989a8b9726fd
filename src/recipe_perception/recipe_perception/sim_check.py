"""Perception's own scenes in the MuJoCo twin: scripted grasp-and-lift episodes and a calibration board.

Both render exactly what the driver's sim backend publishes (the twin's model, collision shapes, the
D435 stream of config/scene.yaml, depth in whole millimetres with far readings as holes), and know the
ground truth that a real robot cannot give: the object's centre, the camera's pose. The benchmark
(benchmarks/perception_bench.py), the tests and the calibration CLI's ``sim-check`` use them.

This module simulates, so it imports recipe_sim and MuJoCo (allowed in test_layering.py); nothing the
perception node imports at start-up imports it.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; read when mujoco is first imported

import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from recipe_common import frames, robot_spec
from recipe_common.cameras import THIRD_VIEW, Intrinsics, camera_table
from recipe_perception.extrinsics import MJ_TO_OPTICAL, CameraExtrinsics, optical_rotation, transform
from recipe_sim.model.builder import GROUP_ENV, build_model, build_spec, substeps
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import load_catalog
from recipe_sim.render import DepthRenderer
from recipe_sim.tasks.config import load_task_configs
from recipe_sim.tasks.grasps import load_grasps
from recipe_sim.tasks.poses import configured_left_palm, ready_pose, set_coupled
from recipe_sim.tasks.scripted import CLOSE_STEPS, REACH_STEPS, SCRIPT_STEPS, plan_side_grasp, script_targets

DEPTH_MAX_M = 10.0  # the driver's depth_max_m: farther (and the far plane) is published as 0


def as_published(depth_m: np.ndarray, max_m: float = DEPTH_MAX_M) -> np.ndarray:
    """What the twin's 16UC1 topic carries, decoded: whole millimetres, NaN for no reading."""
    d = np.asarray(depth_m, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = (d > 0) & (d <= max_m)
    out = np.round(np.where(valid, d, 0.0) * 1000.0).astype(np.float32) / 1000.0
    out[~valid] = np.nan
    return out


@dataclass
class TwinFrame:
    step: int  # policy step (10 Hz) of the episode
    phase: str  # rest | reach | close | lift | hold
    depth_m: np.ndarray  # (H, W) float32 metres, NaN holes: the third-view topic's content
    joint_names: list[str]
    joint_positions: np.ndarray
    object_base: np.ndarray  # true object centre (body frame origin) in base_link


SPAWN_ATTEMPTS = 20


class TwinScene:
    """The twin's tabletop with one catalog object, and the third-view D435 rendered like the driver does."""

    def __init__(
        self,
        object_name: str,
        hand: str = robot_spec.DEFAULT_HAND,
        width: int | None = None,
        height: int | None = None,
        tripod: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``tripod``: (position, look-at point) in the world for the third-view camera instead of
        config/scene.yaml's (to compare camera placements; ``extrinsics`` then gives its pose)."""
        catalog = load_catalog()
        if object_name not in catalog.objects:
            raise KeyError(f"unknown object {object_name!r}; catalog has {sorted(catalog.objects)}")
        self.obj = catalog.objects[object_name]
        self.hand = hand
        self.model, self.index = build_model(hand, obj=self.obj)
        self.data = mujoco.MjData(self.model)
        self.scene = load_scene()
        cam = camera_table()[THIRD_VIEW]
        if tripod is not None:
            pos, lookat = np.asarray(tripod[0], float), np.asarray(tripod[1], float)
            cam = dataclasses.replace(cam, pos=pos, lookat=lookat)
            cid = self.index.cameras[THIRD_VIEW]
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, cam.rotation().reshape(-1))
            self.model.cam_pos[cid], self.model.cam_quat[cid] = cam.pos, quat
        self.extrinsics = CameraExtrinsics(
            camera=THIRD_VIEW,
            cam_to_parent=transform(optical_rotation(cam), frames.from_world(cam.pos, frames.BASE)),
            child_frame=cam.frame_id,
        )
        w, h = width or cam.stream.width, height or cam.stream.height
        self.renderer = DepthRenderer(self.model, THIRD_VIEW, w, h)
        self.intrinsics: Intrinsics = self.renderer.intrinsics
        self.joint_names = robot_spec.state_joint_names(hand)
        self.nsub = substeps()
        self.ready_q = ready_pose(self.model, self.index, configured_left_palm())
        self.reset()

    def reset(self) -> None:
        m, d, idx = self.model, self.data, self.index
        mujoco.mj_resetData(m, d)
        d.qpos[idx.actuated_qpos_adr] = self.ready_q
        set_coupled(m, d, idx)
        d.ctrl[idx.actuator_ids] = self.ready_q
        mujoco.mj_forward(m, d)

    def place_object(self, xy: np.ndarray, yaw: float) -> np.ndarray:
        a = self.index.object_qpos_adr
        pos = np.array([xy[0], xy[1], self.scene.table_top_height + self.obj.resting_height + 0.001])
        self.data.qpos[a : a + 3] = pos
        self.data.qpos[a + 3 : a + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        self.data.qvel[self.index.object_dof_adr : self.index.object_dof_adr + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)
        return pos

    def step(self, n: int = 1) -> None:
        mujoco.mj_step(self.model, self.data, nstep=n * self.nsub)

    def render(self) -> np.ndarray:
        return as_published(self.renderer.render(self.data))

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.index.qpos_adr].copy()

    def object_base(self) -> np.ndarray:
        return frames.from_world(self.data.xpos[self.index.object_body].copy(), frames.BASE)

    def frame(self, step: int, phase: str) -> TwinFrame:
        return TwinFrame(
            step, phase, self.render(), list(self.joint_names), self.joint_positions(), self.object_base()
        )

    def grasp_lift(
        self,
        rng: np.random.Generator,
        frame_every: int = 2,
        rest_steps: int = 6,
        hold_steps: int = 10,
        lift_m: float = 0.15,
    ) -> Iterator[TwinFrame]:
        """One scripted side grasp and lift of the object from a random spawn (grasp_reach's region).

        Frames every ``frame_every`` policy steps (10 Hz / 2 = the 5 Hz perception rate). The hand
        passes in front of the object and wraps it; the object ends up to ``lift_m`` above the table.
        """
        spawn = load_task_configs().get("grasp_reach").spawn
        grasp = load_grasps().get()
        for _ in range(SPAWN_ATTEMPTS):  # a spawn at the region's edge can be out of the grasp's reach
            self.reset()
            xy = spawn.sample(rng, 1, 0.0)[0, :2]
            pos = self.place_object(xy, float(rng.uniform(-0.75, 0.75)))
            side = "left" if pos[1] >= 0 else "right"
            try:
                plan = plan_side_grasp(self.model, self.index, self.ready_q, pos, side, lift=0.0, grasp=grasp)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"no spawn of {SPAWN_ATTEMPTS} draws is reachable by the scripted side grasp")
        sgn = 1.0 if side == "left" else -1.0
        try:
            goal = pos + np.array([0.0, sgn * 0.05, lift_m])
            carry = plan_side_grasp(
                self.model, self.index, self.ready_q, goal, side, lift=0.0, grasp=grasp
            ).approach.copy()
        except ValueError:
            carry = plan.lifted.copy()
        n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
        carry[n_arm:] = plan.closed[n_arm:]
        step = 0
        for _ in range(rest_steps):
            self.step()
            if step % frame_every == 0:
                yield self.frame(step, "rest")
            step += 1
        for k in range(SCRIPT_STEPS + hold_steps):
            self.data.ctrl[self.index.actuator_ids] = script_targets(self.ready_q, plan, carry, k)
            self.step()
            phase = (
                "reach"
                if k < REACH_STEPS
                else "close"
                if k < REACH_STEPS + CLOSE_STEPS
                else "lift"
                if k < SCRIPT_STEPS
                else "hold"
            )
            if step % frame_every == 0:
                yield self.frame(step, phase)
            step += 1

    def close(self) -> None:
        self.renderer.close()

    def __enter__(self) -> TwinScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scene_extrinsics_world(camera: str = THIRD_VIEW) -> np.ndarray:
    """The twin camera's optical frame in the world (4x4), from config/scene.yaml (world-mounted only)."""
    cam = camera_table()[camera]
    if cam.parent != "world":
        raise ValueError(f"camera {camera!r} is not mounted on the world")
    return transform(cam.rotation() @ MJ_TO_OPTICAL, cam.pos)


# --- a calibration board in the twin ------------------------------------------------------------------


@dataclass(frozen=True)
class BoardRender:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    intrinsics: Intrinsics
    board_to_base: np.ndarray  # 4x4: the board frame (OpenCV's: origin at a corner, z out of the face)


class BoardScene:
    """The twin (GR1 + table) plus a flat printed board, rendered in colour from the third-view camera.

    The board's texture is the board image OpenCV generates (``board_image``), so the detection sees what a
    printed board would show; its pose is given in base_link and can be changed between renders.
    """

    def __init__(
        self,
        board_image: np.ndarray,
        board_size_m: tuple[float, float],
        margin_m: float = 0.0,
        hand: str = robot_spec.DEFAULT_HAND,
        width: int | None = None,
        height: int | None = None,
        camera_to_base: np.ndarray | None = None,
    ) -> None:
        """``board_image`` is the printed sheet: the board (``board_size_m``, its chessboard extent) with a
        white margin of ``margin_m`` on every side."""
        import cv2

        cam = camera_table()[THIRD_VIEW]
        self.hand = hand
        self.width, self.height = width or cam.stream.width, height or cam.stream.height
        spec = build_spec(hand, obj=None, visual=False)
        self._tmp = tempfile.TemporaryDirectory(prefix="recipe_board_")
        png = Path(self._tmp.name) / "board.png"
        img = board_image if board_image.ndim == 3 else np.repeat(board_image[..., None], 3, axis=2)
        cv2.imwrite(str(png), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        tex = spec.add_texture(name="board_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, file=str(png))
        tex.gridsize = [1, 1]
        mat = spec.add_material(name="board_mat", emission=0.6, specular=0.0, shininess=0.0)
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "board_tex"
        self.board_size_m = (float(board_size_m[0]), float(board_size_m[1]))
        self.margin_m = float(margin_m)
        w_m, h_m = self.board_size_m[0] + 2 * margin_m, self.board_size_m[1] + 2 * margin_m
        body = spec.worldbody.add_body(name="calib_board", mocap=True)
        # A thin box whose +z face carries the texture; the body frame is the face's centre.
        body.add_geom(
            name="calib_board_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[w_m / 2, h_m / 2, 0.001],
            pos=[0, 0, -0.001],
            material="board_mat",
            group=GROUP_ENV,
            contype=0,
            conaffinity=0,
        )
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._board_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "calib_board")
        self._cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, THIRD_VIEW)
        base = load_scene().base_pos
        self._base = np.asarray(base, dtype=np.float64)
        if camera_to_base is not None:
            self.set_camera(camera_to_base)
        self.intrinsics = Intrinsics.from_fovy(float(self.model.cam_fovy[self._cam]), self.width, self.height)
        self.renderer = mujoco.Renderer(self.model, self.height, self.width)
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 0
        self._option.geomgroup[GROUP_ENV] = 1
        self._option.geomgroup[3] = 1  # the robot's collision shapes, as the twin renders them

    def set_arm_joints(self, q26: np.ndarray) -> None:
        """Actuated joint positions (robot_spec order); coupled hand joints follow their couplings loosely."""
        for name, q in zip(robot_spec.actuated_joint_names(), np.asarray(q26, dtype=np.float64), strict=True):
            self.data.qpos[self.model.joint(name).qposadr[0]] = q
        mujoco.mj_kinematics(self.model, self.data)

    def palm_to_base(self, side: str = "left") -> np.ndarray:
        """The palm site's pose in base_link (what forward kinematics of the joint states gives)."""
        mujoco.mj_kinematics(self.model, self.data)
        site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, f"{side}_palm")
        return transform(
            self.data.site_xmat[site].reshape(3, 3).copy(), self.data.site_xpos[site] - self._base
        )

    def camera_to_base(self) -> np.ndarray:
        """The render camera's optical frame in base_link (the ground truth the calibration should find)."""
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        rot = self.data.cam_xmat[self._cam].reshape(3, 3) @ MJ_TO_OPTICAL
        return transform(rot, self.data.cam_xpos[self._cam] - self._base)

    def set_camera(self, cam_to_base: np.ndarray) -> None:
        """Move the (world-mounted) camera, e.g. to a pose other than the configured one."""
        t = np.asarray(cam_to_base, dtype=np.float64)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, (t[:3, :3] @ MJ_TO_OPTICAL).reshape(-1))
        self.model.cam_pos[self._cam] = t[:3, 3] + self._base
        self.model.cam_quat[self._cam] = quat

    def set_board(self, board_to_base: np.ndarray) -> None:
        """Board frame (OpenCV board convention: x along the width, y along the height, z out of the
        printed face... see ``opencv_board_to_body``) placed at ``board_to_base``."""
        t = np.asarray(board_to_base, dtype=np.float64) @ np.linalg.inv(self.opencv_board_to_body())
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, t[:3, :3].reshape(-1))
        mid = self.model.body_mocapid[self._board_body]
        self.data.mocap_pos[mid] = t[:3, 3] + self._base
        self.data.mocap_quat[mid] = quat

    def opencv_board_to_body(self) -> np.ndarray:
        """OpenCV's board frame in the board body's frame.

        OpenCV puts a board's origin at the top-left corner of the printed image, x to the right, y down
        the image, z into the board (right-handed). MuJoCo maps the texture's first row to +y of the face
        (image top at +y), so the image's top-left corner is (-w/2, +h/2, 0) and OpenCV's y is the body's
        -y, z the body's -z.
        """
        w, h = self.board_size_m
        return transform(np.diag([1.0, -1.0, -1.0]), np.array([-w / 2, h / 2, 0.0]))  # margin is symmetric

    def render(self) -> BoardRender:
        mujoco.mj_forward(self.model, self.data)
        self.renderer.update_scene(self.data, camera=self._cam, scene_option=self._option)
        img = self.renderer.render().copy()
        mid = self.model.body_mocapid[self._board_body]
        body = transform(_quat_to_mat(self.data.mocap_quat[mid]), self.data.mocap_pos[mid] - self._base)
        return BoardRender(img, self.intrinsics, body @ self.opencv_board_to_body())

    def close(self) -> None:
        self.renderer.close()
        self._tmp.cleanup()

    def __enter__(self) -> BoardScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=np.float64))
    return m.reshape(3, 3)


def ground_truth(scene: BoardScene) -> CameraExtrinsics:
    return CameraExtrinsics(
        camera=THIRD_VIEW, cam_to_parent=scene.camera_to_base(), method="twin ground truth"
    )


# --- calibration views in the twin ----------------------------------------------------------------------

# The board's orientation when it faces the tripod camera (+x of base_link) upright: OpenCV's board x along
# +y (the camera's image right is -y... mirrored as seen from the camera), y down (-z), z into the board (-x).
BOARD_FACING_CAMERA = np.column_stack([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])


def _rot(axis: str, deg: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler(axis, deg, degrees=True).as_matrix()


def board_pose_facing_camera(
    centre: np.ndarray, size_m: tuple[float, float], tilt_deg: float = -20.0, yaw_deg: float = 0.0
) -> np.ndarray:
    """board_to_base of a board whose centre is at ``centre`` (base_link), facing the tripod, tilted back."""
    rot = _rot("z", yaw_deg) @ _rot("y", tilt_deg) @ BOARD_FACING_CAMERA
    origin = np.asarray(centre, dtype=np.float64) - rot @ np.array([size_m[0] / 2, size_m[1] / 2, 0.0])
    return transform(rot, origin)


# Board centres (base_link) and tilts for the known-pose check: spread over the table in front of the robot.
KNOWN_BOARD_POSES = (
    (0.45, -0.02, 0.30, -20.0, 0.0),
    (0.55, 0.12, 0.25, -30.0, 20.0),
    (0.50, -0.15, 0.28, -15.0, -20.0),
    (0.60, 0.00, 0.20, -45.0, 0.0),
)


def known_pose_views(scene: BoardScene) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, board_to_base) with the board at KNOWN_BOARD_POSES, the robot at rest out of the way."""
    out = []
    for x, y, z, tilt, yaw in KNOWN_BOARD_POSES:
        scene.set_board(board_pose_facing_camera(np.array([x, y, z]), scene.board_size_m, tilt, yaw))
        r = scene.render()
        out.append((r.image, r.board_to_base))
    return out


def hand_eye_views(
    scene: BoardScene,
    n: int,
    rng: np.random.Generator,
    side: str = "left",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, gripper_to_base) with the board fixed to the palm and the arm at ``n`` varied poses.

    The board sits 12 cm in front of the palm facing the camera at the ready pose; each view perturbs the
    shoulder and wrist joints (up to +-0.35 rad) so the board turns about all three axes.
    """
    model, index = build_model(scene.hand, obj=None)
    ready = ready_pose(model, index, configured_left_palm())
    scene.set_arm_joints(ready)
    palm0 = scene.palm_to_base(side)
    board0 = board_pose_facing_camera(palm0[:3, 3] + np.array([0.12, 0.0, 0.08]), scene.board_size_m, -10.0)
    board_in_palm = np.linalg.inv(palm0) @ board0
    arm = (
        slice(0, robot_spec.NUM_ARM_JOINTS_PER_SIDE)
        if side == "left"
        else slice(robot_spec.NUM_ARM_JOINTS_PER_SIDE, 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE)
    )
    lo, hi = robot_spec.actuated_limits(scene.hand)
    out = []
    while len(out) < n:
        q = ready.copy()
        q[arm] += rng.uniform(-0.35, 0.35, size=robot_spec.NUM_ARM_JOINTS_PER_SIDE) * np.array(
            [0.4, 0.4, 0.6, 0.4, 1.0, 1.0, 1.0]
        )
        q = np.clip(q, lo, hi)
        scene.set_arm_joints(q)
        palm = scene.palm_to_base(side)
        scene.set_board(palm @ board_in_palm)
        out.append((scene.render().image, palm))
    return out
