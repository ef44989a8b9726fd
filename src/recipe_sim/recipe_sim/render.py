"""Depth images from the model's D435 cameras, as float32 metres (z-depth along the optical axis).

The policy's 84x84 head depth is rendered from collision shapes only (table, object and the robot's
capsules/cylinders; geom groups 0 and 3) because on the CPU (llvmpipe) the cost is the 684k-triangle
visual meshes: 84x84 ran at ~410 frames/s from collision shapes vs ~35-50 from the meshes here (a
physics-only model has no meshes at all). The capsules are what the physics touches, and the policy
sees the same shapes in every env. Differences to the real robot's outline (the waist and upper arms
have no collision shape) are small in an egocentric view of the table. Visual meshes (group 2) can be
rendered instead for human-facing images.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("MUJOCO_GL", "egl")  # headless default; must be set before mujoco is imported

import mujoco
import numpy as np

from recipe_common.cameras import Intrinsics
from recipe_sim.model.builder import GROUP_COLLISION, GROUP_ENV, GROUP_VISUAL


def _check_gl_backend() -> None:
    """Fail with advice instead of MuJoCo's opaque error when mujoco chose GLFW without a display."""
    from mujoco.rendering.classic import gl_context

    chosen = getattr(gl_context, "_MUJOCO_GL", None)
    if chosen in ("", "glfw") and not os.environ.get("DISPLAY"):
        raise RuntimeError(
            "mujoco was imported before MUJOCO_GL was set, so it picked GLFW, which needs a display. "
            "Set MUJOCO_GL=egl in the environment, or import recipe_sim.render before mujoco."
        )


def geom_groups(collision_only: bool) -> np.ndarray:
    """mjvOption.geomgroup mask: environment plus either robot collision shapes or visual meshes."""
    mask = np.zeros(mujoco.mjNGROUP, dtype=np.uint8)
    mask[GROUP_ENV] = 1
    mask[GROUP_COLLISION if collision_only else GROUP_VISUAL] = 1
    return mask


class DepthRenderer:
    """Renders depth from one named camera of a model into a (height, width) float32 array in metres.

    Pixels that hit nothing read as the far clipping distance (the scene has a floor, so this only
    happens above the horizon).

    An OpenGL context is bound to the thread that made it current, and EGL refuses to make it current
    in a second thread while the first still holds it. ROS executors call back from any pool thread,
    so every GL call (create, render, close) runs on one thread owned by the renderer.
    """

    def __init__(self, model: mujoco.MjModel, camera: str | int, width: int, height: int,
                 collision_only: bool = True) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(f"{width}x{height} exceeds the model's offscreen buffer "
                             f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}")
        if isinstance(camera, str):
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        else:
            cam_id = int(camera)
        if not 0 <= cam_id < model.ncam:
            raise KeyError(f"camera {camera!r} not found; the model has "
                           f"{[model.camera(i).name for i in range(model.ncam)]}")
        self.model = model
        self.camera_id = int(cam_id)
        self.width, self.height = int(width), int(height)
        _check_gl_backend()
        self._gl_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gl-{camera}")
        self._renderer = self._gl_thread.submit(self._make_renderer).result()
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = geom_groups(collision_only)
        self._option.sitegroup[:] = 0

    def _make_renderer(self) -> mujoco.Renderer:
        r = mujoco.Renderer(self.model, self.height, self.width)
        r.enable_depth_rendering()
        return r

    @property
    def intrinsics(self) -> Intrinsics:
        """Pinhole intrinsics of the rendered image (follows model.cam_fovy, so FOV randomization shows)."""
        return Intrinsics.from_fovy(float(self.model.cam_fovy[self.camera_id]), self.width, self.height)

    def render(self, data: mujoco.MjData) -> np.ndarray:
        return self._gl_thread.submit(self._render, data).result()

    def _render(self, data: mujoco.MjData) -> np.ndarray:
        self._renderer.update_scene(data, camera=self.camera_id, scene_option=self._option)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._gl_thread.submit(self._renderer.close).result()
            self._renderer = None
        self._gl_thread.shutdown(wait=True)

    def __enter__(self) -> DepthRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
