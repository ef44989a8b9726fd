"""Depth rendering: image format, agreement with the camera geometry, and the D435 camera settings."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import math

import mujoco
import numpy as np
import pytest

from recipe_common.cameras import Intrinsics
from recipe_sim.model.builder import GROUP_COLLISION, GROUP_ENV, build_model
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import load_catalog
from recipe_sim.render import DepthRenderer, geom_groups


@pytest.fixture(scope="module")
def scene_with_object():
    model, index = build_model(obj=load_catalog().objects["cube_medium"])
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, index, data


def _world_points(data, cam_id, depth, k: Intrinsics) -> np.ndarray:
    """Back-project a z-depth image to world points (MuJoCo cameras look along -z, image v grows down)."""
    v, u = np.mgrid[0:k.height, 0:k.width]
    x = (u - k.cx) / k.fx * depth
    y = -(v - k.cy) / k.fy * depth
    pts_cam = np.stack([x, y, -depth], axis=-1)
    rot = data.cam_xmat[cam_id].reshape(3, 3)
    return pts_cam @ rot.T + data.cam_xpos[cam_id]


def test_head_depth_84_is_sane_and_sees_the_table(scene_with_object):
    model, index, data = scene_with_object
    scene = load_scene()
    with DepthRenderer(model, "head_depth", 84, 84) as renderer:
        depth = renderer.render(data)
        k = renderer.intrinsics
    assert depth.shape == (84, 84) and depth.dtype == np.float32
    assert np.all(np.isfinite(depth)) and 0.1 < depth.min() and depth.max() < 5.0
    pts = _world_points(data, index.cameras["head_depth"], depth.astype(np.float64), k)
    half = scene.table_half_size
    on_table = ((np.abs(pts[..., 0] - scene.table_center_xy[0]) < half[0] - 0.01)
                & (np.abs(pts[..., 1] - scene.table_center_xy[1]) < half[1] - 0.01))
    assert on_table.mean() > 0.5  # the table fills most of the egocentric view
    top = np.abs(pts[..., 2] - scene.table_top_height) < 0.005
    assert (top & on_table).sum() / on_table.sum() > 0.9  # those pixels lie on the table top plane
    # the cube stands out of the table where it should
    obj = data.xpos[index.object_body]
    near_obj = np.linalg.norm(pts[..., :2] - obj[:2], axis=-1) < 0.02
    assert near_obj.any()
    assert np.allclose(pts[near_obj][:, 2], obj[2] + 0.03, atol=0.01)  # its top face (half size 0.03)


def test_third_view_sees_the_object_front_face(scene_with_object):
    """Project the cube's front-face centre into the tripod camera: the depth there is that face's depth."""
    model, index, data = scene_with_object
    cam = index.cameras["third_view"]
    with DepthRenderer(model, "third_view", 320, 180) as renderer:
        depth = renderer.render(data)
        k = renderer.intrinsics
    face = data.xpos[index.object_body] + np.array([0.03, 0.0, 0.0])  # cube half size 0.03, faces the camera
    p_cam = data.cam_xmat[cam].reshape(3, 3).T @ (face - data.cam_xpos[cam])
    z = -p_cam[2]
    u, v = k.cx + k.fx * p_cam[0] / z, k.cy - k.fy * p_cam[1] / z
    assert 0 <= u < k.width and 0 <= v < k.height
    assert depth[round(v), round(u)] == pytest.approx(z, abs=0.01)


def test_collision_only_render_filters_geom_groups():
    mask = geom_groups(collision_only=True)
    assert np.flatnonzero(mask).tolist() == [GROUP_ENV, GROUP_COLLISION]
    assert np.flatnonzero(geom_groups(collision_only=False)).tolist() == [GROUP_ENV, 2]


def test_visual_and_collision_renders_differ_only_on_the_robot():
    model, _ = build_model(visual=True)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with DepthRenderer(model, "third_view", 128, 96, collision_only=True) as col, \
            DepthRenderer(model, "third_view", 128, 96, collision_only=False) as vis:
        d_col, d_vis = col.render(data), vis.render(data)
    assert np.mean(np.abs(d_col - d_vis) > 0.01) > 0.01  # the robot outline differs
    np.testing.assert_allclose(d_col[-10:], d_vis[-10:], atol=1e-3)  # the table edge in front does not


def test_d435_intrinsics_and_fov():
    scene = load_scene()
    model, index = build_model()
    for name, cam in scene.cameras.items():
        s = cam.stream
        assert s.fovy_deg == pytest.approx(58.0, abs=1.0), name
        assert s.fovx_deg == pytest.approx(87.0, abs=3.0), name
        assert model.cam_fovy[index.cameras[name]] == pytest.approx(s.fovy_deg)
        assert Intrinsics.from_fovy(s.fovy_deg, s.width, s.height).fx == pytest.approx(s.fx, rel=1e-3)
    policy = scene.cameras["head_depth"].policy_image
    assert policy == (84, 84)
    k = Intrinsics.from_fovy(scene.cameras["head_depth"].fovy_deg, *policy)
    assert k.fx == pytest.approx(42 / math.tan(math.radians(scene.cameras["head_depth"].fovy_deg / 2)))
    assert (k.cx, k.cy) == (41.5, 41.5)


def test_bad_renderer_arguments(scene_with_object):
    model, _, _ = scene_with_object
    with pytest.raises(KeyError, match="camera 'eye'"):
        DepthRenderer(model, "eye", 84, 84)
    with pytest.raises(ValueError, match="offscreen buffer"):
        DepthRenderer(model, "head_depth", 4000, 84)
    with pytest.raises(ValueError, match="positive"):
        DepthRenderer(model, "head_depth", 0, 84)
