"""config/perception.yaml and the extrinsics sources: validated, errors name the file and the key."""

import numpy as np
import pytest

from recipe_common.cameras import HEAD, THIRD_VIEW, camera_table
from recipe_common.config import ConfigError
from recipe_perception import extrinsics
from recipe_perception.config import PerceptionConfig, load_perception_config
from recipe_perception.segmenter import Prompt


def test_the_shipped_file_loads():
    cfg = load_perception_config()
    assert cfg.rate_hz == 5.0 and cfg.segmenter == "depth" and cfg.extrinsics == "scene"
    assert cfg.depth_topics() == (
        "/camera/third_view/depth/image_rect_raw",
        "/camera/third_view/depth/camera_info",
    )
    assert cfg.head_topics() == ("/camera/head/depth/image_rect_raw", "/camera/head/depth/camera_info")
    sam = load_perception_config(segmenter="sam2", sam2_checkpoint="x.pt")
    assert sam.depth_topics()[0] == "/camera/third_view/aligned_depth_to_color/image_raw"
    assert sam.color_topic_name() == "/camera/third_view/color/image_raw"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"rate_hz": 0.0}, r"perception.rate_hz must be > 0"),
        ({"segmenter": "sam2"}, "sam2_checkpoint: the sam2 segmenter needs a checkpoint"),
        ({"target_prompt": "pixel:1"}, "target_prompt: a pixel prompt needs 2 finite numbers"),
        ({"workspace_min": [0.0, 0.0, 1.0]}, "workspace_min must be < workspace_max"),
        ({"camera": "wrist"}, "perception.camera must be one of"),
        ({"rate": 5.0}, "unknown key 'rate'"),
        ({"self_filter": "yes"}, "self_filter must be true or false"),
        ({"object_footprint_m": [0.1, 0.0]}, r"object_footprint_m: two positive half-extents"),
        ({"object_footprint_m": [0.1]}, r"object_footprint_m"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        PerceptionConfig.from_dict(override)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "perception.yaml"
    bad.write_text("perception:\n  ros__parameters:\n    gate: 0.1\n")
    with pytest.raises(ConfigError, match=f"{bad}: perception: unknown key 'gate'"):
        load_perception_config(bad)


def test_prompt_parsing():
    assert Prompt.parse("box:1,2,30,40") == Prompt("box", (1.0, 2.0, 30.0, 40.0))
    assert str(Prompt.parse(" auto ")) == "auto"
    for bad in ("box:3,3,1,1", "pixel:a,b", "blob", "point:1,2"):
        with pytest.raises(ValueError):
            Prompt.parse(bad)


def test_scene_extrinsics_put_the_camera_where_the_twin_has_it():
    ext = extrinsics.from_scene(THIRD_VIEW)
    cam = camera_table()[THIRD_VIEW]
    assert np.allclose(ext.position, cam.pos - [0.0, 0.0, 0.93])  # base_link is 0.93 m above the world
    # The optical axis points at the configured lookat point; facing the robot, the image's right is the
    # robot's left (+y), and the image's down is roughly -z.
    look = (cam.lookat - cam.pos) / np.linalg.norm(cam.lookat - cam.pos)
    assert np.allclose(ext.rotation[:, 2], look) and ext.rotation[1, 0] > 0.99 and ext.rotation[2, 1] < -0.9
    p = np.array([0.3, 0.1, 0.0])
    assert np.allclose(ext.to_parent(ext.from_parent(p)), p)
    with pytest.raises(ConfigError, match="mounted on the robot body"):
        extrinsics.from_scene(HEAD)


def test_calibration_file_round_trip_and_errors(tmp_path):
    ext = extrinsics.from_scene(THIRD_VIEW)
    path = extrinsics.CameraExtrinsics(
        THIRD_VIEW, ext.cam_to_parent, method="charuco_board", reprojection_error_px=0.2, views=4
    ).save(tmp_path / "ext.yaml")
    back = extrinsics.resolve(str(path), THIRD_VIEW)
    assert np.allclose(back.cam_to_parent, ext.cam_to_parent, atol=1e-6) and back.reprojection_error_px == 0.2
    with pytest.raises(ConfigError, match="calibrates 'third_view', perception needs 'head_depth'"):
        extrinsics.resolve(str(path), HEAD)
    text = path.read_text()
    (tmp_path / "q.yaml").write_text(text.replace("rotation_xyzw:\n- ", "rotation_xyzw:\n- 3.0\n- "))
    with pytest.raises(ConfigError, match=r"q\.yaml: rotation_xyzw"):
        extrinsics.load(tmp_path / "q.yaml")
    (tmp_path / "p.yaml").write_text(text.replace("parent_frame: base_link", "parent_frame: world"))
    with pytest.raises(ConfigError, match="parent_frame: perception lifts into 'base_link'"):
        extrinsics.load(tmp_path / "p.yaml")
