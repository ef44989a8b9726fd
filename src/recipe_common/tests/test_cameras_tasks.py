import numpy as np
import pytest

from recipe_common import cameras, tasks
from recipe_common.cameras import CameraTopics, Intrinsics, camera_table
from recipe_common.config import ConfigError


def test_the_table_has_both_roles_with_realsense_topics():
    table = camera_table()
    assert set(cameras.REQUIRED_CAMERAS) <= set(table)
    head = table[cameras.HEAD]
    assert head.topics().depth == f"/camera/{head.ros_name}/depth/image_rect_raw"
    assert head.topics().depth_info == f"/camera/{head.ros_name}/depth/camera_info"
    assert head.policy_image is not None
    assert cameras.by_ros_name(head.ros_name).name == cameras.HEAD
    with pytest.raises(KeyError, match="no camera published as 'nope'"):
        cameras.by_ros_name("nope")


def test_topics_namespace_forms():
    assert CameraTopics.of("head", "").depth == "/head/depth/image_rect_raw"
    assert CameraTopics.of("head", "/cam/").color == "/cam/head/color/image_raw"


def test_intrinsics_round_trips_and_scaling_keeps_the_field_of_view():
    k = Intrinsics.from_fovy(58.0, 848, 480)
    assert k.fovy_deg == pytest.approx(58.0)
    assert Intrinsics.from_k(k.k(), 848, 480) == k
    assert Intrinsics.from_dict(k.as_dict()) == k
    half = k.scaled(424, 240)
    assert half.fovy_deg == pytest.approx(k.fovy_deg, rel=1e-9)
    assert half.cx == pytest.approx((424 - 1) / 2)
    with pytest.raises(ValueError, match="fx"):
        Intrinsics(width=1, height=1, fx=0.0, fy=1.0, cx=0.0, cy=0.0)


def test_look_at_rotation_is_orthonormal_and_sees_the_target():
    r = cameras.look_at_rotation(np.array([1.0, 0, 1]), np.array([0.0, 0, 0.5]))
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    forward = -r[:, 2]
    np.testing.assert_allclose(forward, np.array([-1.0, 0, -0.5]) / np.linalg.norm([1, 0, 0.5]))


def test_bad_camera_sections_name_the_key():
    with pytest.raises(ConfigError, match=r"cameras\.third_view: missing"):
        cameras.parse_cameras({"head_depth": {}})
    good = {"ros_name": "a", "parent": "world", "pos": [1, 0, 1], "lookat": [0, 0, 0], "frame_id": "f",
            "stream": {"width": 4, "height": 2, "fx": 2.0, "fy": 2.0, "cx": 1.5, "cy": 0.5}}
    with pytest.raises(ConfigError, match="ros_name must be unique"):
        cameras.parse_cameras({"head_depth": good, "third_view": good})
    with pytest.raises(ConfigError, match=r"cameras.head_depth.stream: fx .* must equal fy"):
        cameras.parse_cameras({"head_depth": {**good, "stream": {**good["stream"], "fx": 3.0}},
                               "third_view": {**good, "ros_name": "b"}})


def test_task_registry_is_the_one_list():
    assert tasks.TASK_NAMES == ("grasp_reach", "box_lift", "handover")
    assert tasks.task_info("box_lift").bimanual
    with pytest.raises(ValueError, match="unknown task 'pour'"):
        tasks.task_info("pour")
