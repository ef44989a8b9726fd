"""SimTwin: one simulated GR1 (arms, hands, table, optional object) used as if it were the real robot.

The driver's sim backend and autotune's "real" side talk to this class. An optional hidden overlay
(ModelParams) gives the twin dynamics that differ from the manufacturer model, so autotune has a
ground truth to recover. The caller sets the pace: ``step``/``advance`` run physics as fast as the CPU
allows and the driver sleeps to stay near real time. All public methods hold one lock, so a driver may
call them from several ROS callbacks.

Rendering never holds the physics: ``render_depth`` copies the pose (qpos, mocap) into an MjData of
its own under the lock (microseconds), then computes kinematics and renders from that copy outside
it. A render of the 848x480 D435 stream takes 20-50 ms on llvmpipe; while it runs, ``step`` goes on.
(Before, the render held the lock and the driver's physics thread stalled behind it: /joint_states
froze for a render, then jumped by the whole backlog.)

Joint limits: MuJoCo's limits are soft constraints, and a finger or wrist pressed against the table
or the object is pushed through its URDF limit, by up to about 0.2 rad (measured: arms and hands
driven at the driver's velocity limits against random targets beyond their ranges; without contacts
the overshoot stays under 0.025 rad). A real joint cannot pass its stop, so ``joint_positions``
reports positions projected onto the URDF range (and ``joint_velocities`` drops the velocity
component pointing out of it at a projected joint). The raw penetration is not hidden:
``limit_penetration()`` gives the current worst one and ``max_limit_penetration`` the worst seen, which
the driver reports in its diagnostics.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering default; read when mujoco is first imported

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from recipe_common import robot_spec
from recipe_common.cameras import Intrinsics
from recipe_sim.model.builder import build_model
from recipe_sim.model.params import ModelParams
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import load_catalog

# Paper Table IV: object initial position +- 2 cm, z-orientation +- 0.75 rad.
SPAWN_JITTER_XY = 0.02
SPAWN_JITTER_YAW = 0.75


class SimTwin:
    """The GR1 as a robot: joint position targets in, joint states and depth images out."""

    def __init__(self, hand: str = robot_spec.DEFAULT_HAND,
                 overlay: ModelParams | str | Path | Mapping[str, Any] | None = None,
                 object_name: str | None = None, render: bool = False, seed: int = 0,
                 visual: bool = False) -> None:
        robot_spec.get_hand(hand)
        self.hand = hand
        self._lock = threading.RLock()
        self._overlay = ModelParams.coerce(overlay, hand)
        obj = None
        if object_name is not None:
            catalog = load_catalog()
            if object_name not in catalog.objects:
                raise KeyError(f"unknown object {object_name!r}; catalog has {sorted(catalog.objects)}")
            obj = catalog.objects[object_name]
        self.model, self.index = build_model(hand, obj=obj, params=self._overlay, visual=visual)
        self.data = mujoco.MjData(self.model)
        self.rng = np.random.default_rng(seed)
        self._scene = load_scene()
        self._render = render
        self._renderers: dict[tuple[str, int, int], Any] = {}
        self._lower = self.model.actuator_ctrlrange[self.index.actuator_ids, 0].copy()
        self._upper = self.model.actuator_ctrlrange[self.index.actuator_ids, 1].copy()
        limited = self.model.jnt_limited[self.index.joint_ids].astype(bool)
        ranges = self.model.jnt_range[self.index.joint_ids]
        self._joint_lo = np.where(limited, ranges[:, 0], -np.inf)
        self._joint_hi = np.where(limited, ranges[:, 1], np.inf)
        self.max_limit_penetration = 0.0
        self._render_lock = threading.Lock()  # one render at a time; never taken by the physics
        self._render_data: mujoco.MjData | None = None
        self.reset()

    # --- description --------------------------------------------------------------------------------

    @property
    def joint_names(self) -> list[str]:
        return robot_spec.state_joint_names(self.hand)

    @property
    def actuated_names(self) -> list[str]:
        return robot_spec.actuated_joint_names()

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        return float(self.data.time)

    # --- commands -----------------------------------------------------------------------------------

    def set_targets(self, q_target: np.ndarray) -> None:
        """Joint position targets (26,) in radians, actuated order; clipped to the joint limits."""
        q = _check_vector(q_target, robot_spec.ACTION_DIM, "q_target")
        with self._lock:
            self.data.ctrl[self.index.actuator_ids] = np.clip(q, self._lower, self._upper)

    def step(self, n: int = 1) -> None:
        if n < 0:
            raise ValueError(f"step count must be >= 0, got {n}")
        with self._lock:
            if n:
                mujoco.mj_step(self.model, self.data, nstep=int(n))

    def advance(self, seconds: float) -> None:
        """Simulate ``seconds`` of time (rounded to whole physics steps)."""
        if not np.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be finite and >= 0, got {seconds}")
        self.step(round(seconds / self.dt))

    def reset(self, q: np.ndarray | None = None, randomize_object: bool = False) -> None:
        """Put the actuated joints at ``q`` (26,; default all zero, arms hanging), at rest, targets = q.

        Coupled joints are placed on their coupling (q_u = k * q_a + b, clipped to their joint range: the
        Inspire URDF's thumb limits are tighter than its mimic ratios) so no constraint force kicks in.
        The object goes to the scene's spawn pose (with the paper's jitter if ``randomize_object``).
        """
        q = np.zeros(robot_spec.ACTION_DIM) if q is None else _check_vector(q, robot_spec.ACTION_DIM, "q")
        with self._lock:
            mujoco.mj_resetData(self.model, self.data)
            self._set_robot(q)
            if self.index.object_body >= 0:
                self._place_object(randomize_object)
            mujoco.mj_forward(self.model, self.data)

    def place_robot(self, q: np.ndarray) -> None:
        """Put the actuated joints at ``q`` (26,) at rest, targets = q, coupled joints on their coupling;
        the object, the clock and everything else stay. For the trial harness when a failed episode left
        an arm caught where a commanded move cannot free it (on the robot, the operator frees it)."""
        q = _check_vector(q, robot_spec.ACTION_DIM, "q")
        with self._lock:
            self._set_robot(q)
            mujoco.mj_forward(self.model, self.data)

    def _set_robot(self, q: np.ndarray) -> None:
        """Actuated joints at ``q`` (clipped to their limits) and at rest, targets = q; coupled joints on
        their coupling (q_u = k * q_a + b, clipped to their range) and at rest. Caller holds the lock."""
        q = np.clip(q, self._lower, self._upper)
        self.data.qpos[self.index.actuated_qpos_adr] = q
        self.data.qvel[self.index.actuated_dof_adr] = 0.0
        eq = self.model.eq_data[self.index.coupling_eq_ids]
        drivers = q[self.index.coupling_actuated_index]
        coupled = self.index.joint_ids[robot_spec.ACTION_DIM:]
        coupled_range = self.model.jnt_range[coupled]
        self.data.qpos[self.index.coupled_qpos_adr] = np.clip(eq[:, 0] + eq[:, 1] * drivers,
                                                              coupled_range[:, 0], coupled_range[:, 1])
        self.data.qvel[self.model.jnt_dofadr[coupled]] = 0.0
        self.data.ctrl[self.index.actuator_ids] = q

    def _place_object(self, randomize: bool) -> None:
        spec = self.index.object_spec
        assert spec is not None
        xy = self._scene.spawn_xy.copy()
        yaw = self._scene.spawn_yaw
        if randomize:
            xy += self.rng.uniform(-SPAWN_JITTER_XY, SPAWN_JITTER_XY, size=2)
            yaw += self.rng.uniform(-SPAWN_JITTER_YAW, SPAWN_JITTER_YAW)
        adr = self.index.object_qpos_adr
        self.data.qpos[adr:adr + 3] = [*xy, self._scene.table_top_height + spec.resting_height]
        self.data.qpos[adr + 3:adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        self.data.qvel[self.index.object_dof_adr:self.index.object_dof_adr + 6] = 0.0

    # --- state --------------------------------------------------------------------------------------

    def joint_positions(self) -> np.ndarray:
        """Joint positions (rad), projected onto the URDF limits (see the module docstring)."""
        with self._lock:
            raw = self.data.qpos[self.index.qpos_adr].copy()
        self._note_penetration(raw)
        return np.clip(raw, self._joint_lo, self._joint_hi)

    def joint_velocities(self) -> np.ndarray:
        """Joint velocities (rad/s); zero outward velocity at a joint held at its limit by the projection."""
        with self._lock:
            q = self.data.qpos[self.index.qpos_adr].copy()
            dq = self.data.qvel[self.index.dof_adr].copy()
        outward = ((q >= self._joint_hi) & (dq > 0)) | ((q <= self._joint_lo) & (dq < 0))
        dq[outward] = 0.0
        return dq

    def limit_penetration(self) -> float:
        """How far (rad) the most penetrating joint is past its URDF limit right now (0 when inside)."""
        with self._lock:
            raw = self.data.qpos[self.index.qpos_adr].copy()
        return self._note_penetration(raw)

    def _note_penetration(self, raw: np.ndarray) -> float:
        depth = float(np.max(np.maximum(raw - self._joint_hi, self._joint_lo - raw), initial=0.0))
        self.max_limit_penetration = max(self.max_limit_penetration, depth)
        return depth

    def joint_efforts(self) -> np.ndarray:
        """Actuator torque per joint (Nm); coupled joints have no motor and read 0."""
        with self._lock:
            return self.data.qfrc_actuator[self.index.dof_adr].copy()

    def object_position(self) -> np.ndarray | None:
        if self.index.object_body < 0:
            return None
        with self._lock:
            return self.data.xpos[self.index.object_body].copy()

    def set_object_pose(self, pose: np.ndarray) -> None:
        """Put the object at ``pose`` (7,: xyz, wxyz quaternion; world frame), at rest (a trial's reset)."""
        if self.index.object_body < 0:
            raise RuntimeError("this SimTwin has no object")
        p = _check_vector(pose, 7, "pose")
        quat = p[3:] / np.linalg.norm(p[3:])
        with self._lock:
            adr, dof = self.index.object_qpos_adr, self.index.object_dof_adr
            self.data.qpos[adr:adr + 3] = p[:3]
            self.data.qpos[adr + 3:adr + 7] = quat
            self.data.qvel[dof:dof + 6] = 0.0
            mujoco.mj_forward(self.model, self.data)

    def ground_truth(self) -> dict[str, np.ndarray]:
        """One consistent snapshot of what trials judge: actuated q/qd (26), object pose and velocity
        (free-joint velocity: linear world, angular body frame), fingertip (2, 4, 3) and palm (2, 3) sites,
        and which hands touch the object (2,) (the model's contact sensors, as in the vectorized env)."""
        idx = self.index
        with self._lock:
            out = {"q": self.data.qpos[idx.actuated_qpos_adr].copy(),
                   "qd": self.data.qvel[idx.actuated_dof_adr].copy(),
                   "tips": self.data.site_xpos[idx.fingertip_sites].copy(),
                   "palms": self.data.site_xpos[idx.palm_sites].copy(),
                   "time": np.array(self.data.time)}
            if idx.object_body >= 0:
                adr, dof = idx.object_qpos_adr, idx.object_dof_adr
                out.update(object_pos=self.data.qpos[adr:adr + 3].copy(),
                           object_quat=self.data.qpos[adr + 3:adr + 7].copy(),
                           object_linvel=self.data.qvel[dof:dof + 3].copy(),
                           object_angvel=self.data.qvel[dof + 3:dof + 6].copy(),
                           hands_touching=self.data.sensordata[idx.hand_touch_adr] > 0)
        return out

    # --- cameras ------------------------------------------------------------------------------------

    def _stream_size(self, camera: str, width: int | None, height: int | None) -> tuple[int, int]:
        if camera not in self._scene.cameras:
            raise KeyError(f"unknown camera {camera!r}; cameras: {sorted(self._scene.cameras)}")
        stream = self._scene.cameras[camera].stream
        return (width or stream.width, height or stream.height)

    def camera_info(self, camera: str, width: int | None = None, height: int | None = None) -> dict[str, Any]:
        """Intrinsics of ``render_depth(camera)`` (the D435 stream size unless a size is given)."""
        w, h = self._stream_size(camera, width, height)
        fovy = float(self.model.cam_fovy[self.index.cameras[camera]])
        info: dict[str, Any] = Intrinsics.from_fovy(fovy, w, h).as_dict()
        info["frame_id"] = self._scene.cameras[camera].frame_id
        return info

    def render_depth(self, camera: str, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Depth (H, W) float32 metres from a scene camera, collision shapes only (see recipe_sim.render).

        Renders from a copy of the current pose, so ``step`` is never blocked by a render.
        """
        if not self._render:
            raise RuntimeError("this SimTwin was created with render=False")
        w, h = self._stream_size(camera, width, height)
        with self._render_lock:
            key = (camera, w, h)
            if key not in self._renderers:
                from recipe_sim.render import DepthRenderer

                self._renderers[key] = DepthRenderer(self.model, camera, w, h)
            pose = self._snapshot()
            return self._renderers[key].render(pose)

    def _snapshot(self) -> mujoco.MjData:
        """The render MjData at the physics' current pose: copied under the lock, kinematics outside it."""
        if self._render_data is None:
            self._render_data = mujoco.MjData(self.model)
        rd = self._render_data
        with self._lock:
            rd.qpos[:] = self.data.qpos
            rd.mocap_pos[:] = self.data.mocap_pos
            rd.mocap_quat[:] = self.data.mocap_quat
            rd.time = self.data.time
        mujoco.mj_kinematics(self.model, rd)  # body, geom and site poses
        mujoco.mj_camlight(self.model, rd)  # camera and light poses
        return rd

    def close(self) -> None:
        with self._render_lock:
            for r in self._renderers.values():
                r.close()
            self._renderers.clear()

    def __enter__(self) -> SimTwin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_vector(value: np.ndarray, n: int, name: str) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or inf at index {np.flatnonzero(~np.isfinite(v)).tolist()}")
    return v
