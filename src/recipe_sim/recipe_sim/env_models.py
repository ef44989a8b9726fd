"""One MjModel per env: which catalog object it holds, and its per-episode domain randomization.

All object templates share one size signature (one primitive geom on one free body), so an env
switches object by copying the handful of model fields in which the templates differ (found by
comparing them, not by a hand-written list that could miss one). Randomized fields are always
rewritten from the template first, so values never compound across episodes. Derived constants
(subtree masses, inverse weights that scale contact softness) are recomputed with ``mj_setConst``.

Written per reset (Table IV): object mass and friction (absolute), object shape scale (geom size,
bounding volumes and inertia follow), hand friction (hand geoms and the explicit finger pairs), PD
gains (kp scales the actuator gain and the position bias terms, kd the velocity bias term), and the
depth camera's pose and field of view when a depth camera is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import mujoco
import numpy as np

from recipe_sim.randomization import RandomizationConfig
from recipe_sim.sim_batch import PhysicsTemplate, copy_model

# Fields the randomization writes: restored from the template before every write.
RANDOMIZED_FIELDS = (
    "geom_size",
    "geom_rbound",
    "geom_aabb",
    "bvh_aabb",
    "body_mass",
    "body_inertia",
    "geom_friction",
    "pair_friction",
    "actuator_gainprm",
    "actuator_biasprm",
    "cam_pos",
    "cam_quat",
    "cam_fovy",
)
_SIZE_FIELDS = ("nq", "nv", "nu", "nbody", "ngeom", "nsite", "ncam", "neq", "nsensordata", "npair", "nbvh")


def _array_fields(model: mujoco.MjModel) -> list[str]:
    return [
        n for n in dir(model) if not n.startswith("_") and isinstance(getattr(model, n, None), np.ndarray)
    ]


def differing_fields(models: list[mujoco.MjModel]) -> list[str]:
    """Array fields whose values differ between models of one size signature."""
    ref = models[0]
    out = []
    for name in _array_fields(ref):
        a = getattr(ref, name)
        if any(not np.array_equal(a, getattr(m, name)) for m in models[1:]):
            out.append(name)
    return out


def rpy_quat(rpy: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of intrinsic x-y-z rotations by ``rpy`` radians."""
    out = np.array([1.0, 0.0, 0.0, 0.0])
    for axis, angle in enumerate(rpy):
        q = np.zeros(4)
        q[0] = math.cos(angle / 2.0)
        q[1 + axis] = math.sin(angle / 2.0)
        res = np.zeros(4)
        mujoco.mju_mulQuat(res, out, q)
        out = res
    return out


class EnvModels:
    """The per-env MjModel copies and the object each env currently holds."""

    def __init__(
        self, templates: Mapping[str, PhysicsTemplate], num_envs: int, depth_camera: str | None = None
    ) -> None:
        if not templates:
            raise ValueError("EnvModels needs at least one object template")
        self.templates = dict(templates)
        self.object_names = list(self.templates)
        ref = self.templates[self.object_names[0]]
        for name, t in self.templates.items():
            for size in _SIZE_FIELDS:
                if getattr(t.model, size) != getattr(ref.model, size):
                    raise ValueError(
                        f"object {name!r}: model {size}={getattr(t.model, size)} differs from "
                        f"{getattr(ref.model, size)} of {self.object_names[0]!r}; all objects must "
                        "compile to the same size signature (one primitive geom each)"
                    )
            for ids in ("object_body", "object_geom", "object_qpos_adr"):
                if getattr(t.index, ids) != getattr(ref.index, ids):
                    raise ValueError(f"object {name!r}: {ids} differs between object templates")
            t.model.stat.extent = ref.model.stat.extent  # depth linearization uses one extent for all envs
        self.index = ref.index
        self.copy_fields = sorted(
            set(differing_fields([t.model for t in self.templates.values()])) | set(RANDOMIZED_FIELDS)
        )
        self.models = [copy_model(ref.model) for _ in range(num_envs)]
        self.object_id = np.zeros(num_envs, dtype=int)
        self.depth_camera = depth_camera
        if depth_camera is not None and depth_camera not in self.index.cameras:
            raise KeyError(f"unknown camera {depth_camera!r}; the model has {sorted(self.index.cameras)}")
        self._scratch = mujoco.MjData(ref.model)

    def template_of(self, env_id: int) -> PhysicsTemplate:
        return self.templates[self.object_names[self.object_id[env_id]]]

    def nominal_mass(self, object_id: int) -> float:
        t = self.templates[self.object_names[object_id]]
        return float(t.model.body_mass[t.index.object_body])

    def nominal_friction(self, object_id: int) -> float:
        t = self.templates[self.object_names[object_id]]
        return float(t.model.geom_friction[t.index.object_geom, 0])

    def write(
        self,
        env_id: int,
        object_id: int,
        sample: Mapping[str, np.ndarray],
        row: int,
        cfg: RandomizationConfig,
    ) -> None:
        """Give env ``env_id`` object ``object_id`` and row ``row`` of a ``sample_episode`` draw.

        Disabled mass/friction items keep the catalog object's own nominal values (the randomization
        config's single nominal cannot fit both a 65 g can and a 200 g box).
        """
        self.object_id[env_id] = object_id
        t = self.templates[self.object_names[object_id]]
        m, src, idx = self.models[env_id], t.model, self.index
        for name in self.copy_fields:
            getattr(m, name)[...] = getattr(src, name)
        g, b = idx.object_geom, idx.object_body
        s = float(sample["object_scale"][row])
        m.geom_size[g] = src.geom_size[g] * s
        m.geom_rbound[g] = src.geom_rbound[g] * s
        m.geom_aabb[g] = src.geom_aabb[g] * s
        bvh = slice(int(src.body_bvhadr[b]), int(src.body_bvhadr[b] + src.body_bvhnum[b]))
        m.bvh_aabb[bvh] = src.bvh_aabb[bvh] * s
        mass = float(sample["object_mass"][row]) if cfg.object_mass.enabled else float(src.body_mass[b])
        m.body_mass[b] = mass
        m.body_inertia[b] = src.body_inertia[b] * (mass / src.body_mass[b]) * s * s
        if cfg.object_friction.enabled:
            m.geom_friction[g, 0] = float(sample["object_friction"][row])
        hand_mu = float(sample["hand_friction"][row])
        m.geom_friction[idx.hand_geoms, 0] = hand_mu
        if m.npair:
            m.pair_friction[:, :2] = hand_mu
        a = idx.actuator_ids
        kp_s, kd_s = float(sample["kp_scale"][row]), float(sample["kd_scale"][row])
        m.actuator_gainprm[a, 0] = src.actuator_gainprm[a, 0] * kp_s
        m.actuator_biasprm[a, 0] = src.actuator_biasprm[a, 0] * kp_s
        m.actuator_biasprm[a, 1] = src.actuator_biasprm[a, 1] * kp_s
        m.actuator_biasprm[a, 2] = src.actuator_biasprm[a, 2] * kd_s
        if self.depth_camera is not None:
            cam = idx.cameras[self.depth_camera]
            m.cam_pos[cam] = src.cam_pos[cam] + sample["camera_pos_offset"][row]
            dq = rpy_quat(np.radians(sample["camera_rot_offset_deg"][row]))
            mujoco.mju_mulQuat(m.cam_quat[cam], src.cam_quat[cam], dq)
            m.cam_fovy[cam] = src.cam_fovy[cam] + float(sample["camera_fov_offset_deg"][row])
        mujoco.mj_setConst(m, self._scratch)
        m.stat.extent = src.stat.extent

    def object_values(self, env_id: int) -> dict[str, float]:
        """What was written for an env (for the privileged observation and for tests)."""
        m, t, idx = self.models[env_id], self.template_of(env_id), self.index
        a = idx.actuator_ids
        return {
            "object_mass": float(m.body_mass[idx.object_body]),
            "object_friction": float(m.geom_friction[idx.object_geom, 0]),
            "object_scale": float(m.geom_size[idx.object_geom, 0] / t.model.geom_size[idx.object_geom, 0]),
            "hand_friction": float(m.geom_friction[idx.hand_geoms[0], 0]),
            "kp_scale": float(m.actuator_gainprm[a[0], 0] / t.model.actuator_gainprm[a[0], 0]),
            "kd_scale": float(m.actuator_biasprm[a[0], 2] / t.model.actuator_biasprm[a[0], 2]),
        }
