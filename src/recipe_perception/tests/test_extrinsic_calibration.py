"""Extrinsic calibration: the CLI recovers the twin's camera pose from a rendered ChArUco board."""

import numpy as np
import pytest
import yaml

from recipe_common.cameras import THIRD_VIEW, Intrinsics
from recipe_perception.calibration import cli
from recipe_perception.calibration.board import BoardSpec, detect
from recipe_perception.calibration.solve import CalibrationError, View, from_hand_eye, hand_eye_park_martin
from recipe_perception.extrinsics import from_scene, load, pose_error, transform

pytest.importorskip("recipe_sim.model.builder")


def test_sim_check_recovers_the_configured_pose(tmp_path, capsys):
    """Board at known poses and hand-eye, through files as a user's would be: <= 1 cm, <= 1 deg."""
    assert cli.main(["sim-check", "--method", "both", "--views", "12", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("(ok: limits 1 cm, 1 deg)") == 2, out
    truth = from_scene(THIRD_VIEW).cam_to_parent
    for method in ("board", "handeye"):
        ext = load(tmp_path / method / "extrinsics.yaml")
        dt, dr = pose_error(ext.cam_to_parent, truth)
        assert dt <= 0.01 and dr <= 1.0, (method, dt, dr)
        assert ext.reprojection_error_px < 0.5 and ext.camera == THIRD_VIEW
        assert ext.child_frame == "third_view_camera_depth_optical_frame"
    # The files the CLI's board command reads: the same numbers again.
    info = tmp_path / "info.yaml"
    info.write_text(yaml.safe_dump(load(tmp_path / "board" / "extrinsics.yaml").intrinsics.as_dict()))
    again = tmp_path / "again.yaml"
    assert (
        cli.main(
            [
                "board",
                "--views",
                str(tmp_path / "board" / "views.yaml"),
                "--intrinsics",
                str(info),
                "--out",
                str(again),
            ]
        )
        == 0
    )
    assert pose_error(load(again).cam_to_parent, truth)[0] <= 0.01


def test_board_detection_and_errors(tmp_path, capsys):
    spec = BoardSpec()
    assert detect(np.full((100, 100), 255, np.uint8), spec) is None
    with pytest.raises(ValueError, match="expected SXxSY"):
        BoardSpec.parse("seven by five")
    with pytest.raises(ValueError, match="unknown ArUco dictionary"):
        BoardSpec(dictionary="DICT_9X9_1")
    views = tmp_path / "views.yaml"
    views.write_text(
        "format: recipe_perception/calibration_views/v1\nviews:\n"
        "  - {image: missing.png, board_to_base: {translation: [0, 0, 0], rotation_xyzw: [0, 0, 0, 1]}}\n"
    )
    info = tmp_path / "info.yaml"
    info.write_text("{width: 848, height: 480, fx: 433.0, fy: 433.0, cx: 423.5, cy: 239.5}\n")
    assert (
        cli.main(["board", "--views", str(views), "--intrinsics", str(info), "--out", str(tmp_path / "x")])
        == 2
    )
    assert "views[0].image: cannot read" in capsys.readouterr().err


def test_park_martin_on_exact_motions():
    rng = np.random.default_rng(0)
    from scipy.spatial.transform import Rotation

    x = transform(Rotation.from_euler("xyz", [100, 5, 80], degrees=True).as_matrix(), [1.4, 0.0, 0.3])
    y = transform(Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix(), [0.1, 0.02, 0.05])
    grip = [
        transform(
            Rotation.from_rotvec(rng.normal(0, 0.4, 3)).as_matrix(),
            rng.uniform(-0.2, 0.2, 3) + np.array([0.3, 0.1, 0.1]),
        )
        for _ in range(8)
    ]
    cams = [np.linalg.inv(x) @ g @ y for g in grip]  # X C = G Y
    assert pose_error(hand_eye_park_martin(grip, cams), x)[0] < 1e-6
    with pytest.raises(CalibrationError, match="do not rotate enough"):
        hand_eye_park_martin([grip[0]] * 4, [cams[0]] * 4)
    with pytest.raises(CalibrationError, match="at least 3 views"):
        from_hand_eye(
            [View(np.zeros((10, 10, 3), np.uint8), np.eye(4))],
            BoardSpec(),
            Intrinsics.from_fovy(58, 10, 10),
            THIRD_VIEW,
        )
