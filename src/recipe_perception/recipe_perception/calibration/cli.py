"""``calibrate_extrinsics``: the third-view camera's pose in base_link, written as the YAML perception reads.

  calibrate_extrinsics board    --views views.yaml --intrinsics info.yaml --out extrinsics.yaml
  calibrate_extrinsics handeye  --views views.yaml --intrinsics info.yaml --out extrinsics.yaml
  calibrate_extrinsics sim-check [--method board|handeye|both] [--out runs/calibration]

``views.yaml`` (``format: recipe_perception/calibration_views/v1``) lists the images (paths relative to
the file) and, per image, the board's pose in base_link (``board``) or the gripper's (``handeye``: the
palm's pose from the joint states and the robot model), each as ``translation`` (m) and
``rotation_xyzw``. ``info.yaml`` holds the intrinsics of the camera that took the images (width, height,
fx, fy, cx, cy; or a CameraInfo dump with ``k``). Use images of the stream the depth is lifted from (the
left infrared stream shares the depth stream's optical frame; with colour images, pass the colour-to-depth
offset ``--color-to-depth X Y Z`` from the device's extrinsics, or lift from the aligned depth).

``sim-check`` renders a ChArUco board in the MuJoCo twin (the GR1 model, the table, the configured
third-view camera), runs the same code and compares the result with the configured pose: the tool and
its conventions are checked end to end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from recipe_common.cameras import THIRD_VIEW, Intrinsics
from recipe_common.config import (
    ConfigError,
    as_float,
    as_int,
    as_list,
    as_str,
    as_vector,
    load_yaml,
    require_keys,
)
from recipe_perception.calibration.board import BoardSpec
from recipe_perception.calibration.solve import CalibrationError, View, from_board, from_hand_eye
from recipe_perception.extrinsics import CameraExtrinsics, pose_error, transform

VIEWS_FORMAT = "recipe_perception/calibration_views/v1"
DEFAULT_BOARD = "9x6:0.05:0.037:DICT_5X5_100"
HANDEYE_BOARD = "5x4:0.06:0.045:DICT_4X4_50"


def load_intrinsics(path: str | Path) -> Intrinsics:
    data = load_yaml(path)
    try:
        if "k" in data:
            k = as_vector(data["k"], "k", 9)
            return Intrinsics.from_k(
                k, as_int(data["width"], "width", 1), as_int(data["height"], "height", 1)
            )
        require_keys(data, "intrinsics", {"width", "height", "fx", "fy", "cx", "cy"}, {"frame_id"})
        return Intrinsics(
            width=as_int(data["width"], "width", 1),
            height=as_int(data["height"], "height", 1),
            fx=as_float(data["fx"], "fx", positive=True),
            fy=as_float(data["fy"], "fy", positive=True),
            cx=as_float(data["cx"], "cx"),
            cy=as_float(data["cy"], "cy"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _pose(raw: Any, where: str) -> np.ndarray:
    require_keys(raw, where, {"translation", "rotation_xyzw"})
    q = as_vector(raw["rotation_xyzw"], f"{where}.rotation_xyzw", 4)
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise ConfigError(f"{where}.rotation_xyzw must be a unit quaternion")
    return transform(
        Rotation.from_quat(q).as_matrix(), as_vector(raw["translation"], f"{where}.translation", 3)
    )


def pose_dict(t: np.ndarray) -> dict[str, list[float]]:
    return {
        "translation": [round(float(v), 6) for v in t[:3, 3]],
        "rotation_xyzw": [round(float(v), 8) for v in Rotation.from_matrix(t[:3, :3]).as_quat()],
    }


def load_views(path: str | Path, key: str) -> list[View]:
    """``key``: ``board_to_base`` or ``gripper_to_base``."""
    path = Path(path)
    data = load_yaml(path, VIEWS_FORMAT)
    try:
        require_keys(data, "views file", {"format", "views"}, {"notes"})
        views = []
        for i, raw in enumerate(as_list(data["views"], "views", dict, 1)):
            where = f"views[{i}]"
            require_keys(raw, where, {"image", key})
            img_path = path.parent / as_str(raw["image"], f"{where}.image", nonempty=True)
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if img is None:
                raise ConfigError(f"{where}.image: cannot read {img_path}")
            views.append(
                View(
                    cv2.cvtColor(img, cv2.COLOR_BGR2RGB),
                    _pose(raw[key], f"{where}.{key}"),
                    str(img_path.name),
                )
            )
        return views
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_views(path: Path, views: list[tuple[np.ndarray, np.ndarray]], key: str) -> Path:
    """Write images and poses in the views file format (what a capture would save)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (img, pose) in enumerate(views):
        name = f"view_{i:02d}.png"
        cv2.imwrite(str(path.parent / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        entries.append({"image": name, key: pose_dict(pose)})
    path.write_text(yaml.safe_dump({"format": VIEWS_FORMAT, "views": entries}, sort_keys=False))
    return path


def _apply_color_offset(ext: CameraExtrinsics, offset: list[float] | None) -> CameraExtrinsics:
    """The colour camera's pose -> the depth optical frame's (depth = colour + offset, colour axes)."""
    if not offset:
        return ext
    t = ext.cam_to_parent @ transform(np.eye(3), np.asarray(offset, dtype=np.float64))
    return CameraExtrinsics(
        camera=ext.camera,
        cam_to_parent=t,
        method=ext.method,
        reprojection_error_px=ext.reprojection_error_px,
        views=ext.views,
        intrinsics=ext.intrinsics,
        notes={**ext.notes, "color_to_depth_m": offset},
    )


def _report(ext: CameraExtrinsics, out: Path | None) -> None:
    t = ext.position
    rpy = Rotation.from_matrix(ext.rotation).as_euler("xyz", degrees=True)
    print(
        f"camera {ext.camera} in base_link: translation {np.round(t, 4).tolist()} m, "
        f"rpy {np.round(rpy, 2).tolist()} "
        f"deg; {ext.views} views, reprojection RMS {ext.reprojection_error_px:.3f} px"
    )
    if out is not None:
        ext.save(out)
        print(f"wrote {out}")


def sim_check(method: str, out_dir: Path | None, views: int, seed: int) -> int:
    """Render the board in the twin, calibrate, compare with the configured camera pose."""
    from recipe_perception import sim_check as twin  # MuJoCo: only for the sim check

    results = []
    for m in ["board", "handeye"] if method == "both" else [method]:
        spec = BoardSpec.parse(DEFAULT_BOARD if m == "board" else HANDEYE_BOARD)
        with twin.BoardScene(spec.image(), spec.size_m, 0.5 * spec.square_m) as scene:
            truth = scene.camera_to_base()
            if m == "board":
                rendered = twin.known_pose_views(scene)
                key = "board_to_base"
            else:
                rendered = twin.hand_eye_views(scene, views, np.random.default_rng(seed))
                key = "gripper_to_base"
            if out_dir is not None:
                vfile = save_views(out_dir / m / "views.yaml", rendered, key)
                loaded = load_views(vfile, key)  # the same path a user's files take
            else:
                loaded = [View(img, pose, str(i)) for i, (img, pose) in enumerate(rendered)]
            solve = from_board if m == "board" else from_hand_eye
            ext = solve(loaded, spec, scene.intrinsics, THIRD_VIEW)
        dt, dr = pose_error(ext.cam_to_parent, truth)
        ok = dt <= 0.01 and dr <= 1.0
        results.append(ok)
        print(
            f"[sim-check {m}] error vs the twin's camera: {100 * dt:.2f} cm, {dr:.3f} deg "
            f"({'ok' if ok else 'FAILED'}: limits 1 cm, 1 deg)"
        )
        _report(ext, None if out_dir is None else out_dir / m / "extrinsics.yaml")
    return 0 if all(results) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="calibrate_extrinsics",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, key in (("board", "board_to_base"), ("handeye", "gripper_to_base")):
        s = sub.add_parser(name, help=f"views with {key} poses")
        s.add_argument("--views", required=True, type=Path, help=f"{VIEWS_FORMAT} YAML")
        s.add_argument("--intrinsics", required=True, type=Path, help="YAML: width height fx fy cx cy (or k)")
        s.add_argument(
            "--board",
            default=DEFAULT_BOARD if name == "board" else HANDEYE_BOARD,
            help="SXxSY:SQUARE_M:MARKER_M:DICTIONARY",
        )
        s.add_argument("--camera", default=THIRD_VIEW, help="camera table name the file is for")
        s.add_argument(
            "--color-to-depth",
            type=float,
            nargs=3,
            default=None,
            metavar=("X", "Y", "Z"),
            help="depth optical frame origin in the image camera's frame (m), if not the same",
        )
        s.add_argument("--out", type=Path, required=True, help="extrinsics YAML to write")
    s = sub.add_parser("sim-check", help="calibrate in the MuJoCo twin and compare with the configured pose")
    s.add_argument("--method", choices=("board", "handeye", "both"), default="both")
    s.add_argument("--views", type=int, default=15, help="hand-eye poses")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, default=None, help="folder for the rendered views and results")
    a = p.parse_args(argv)
    try:
        if a.cmd == "sim-check":
            return sim_check(a.method, a.out, a.views, a.seed)
        key = "board_to_base" if a.cmd == "board" else "gripper_to_base"
        views = load_views(a.views, key)
        k = load_intrinsics(a.intrinsics)
        spec = BoardSpec.parse(a.board)
        solve = from_board if a.cmd == "board" else from_hand_eye
        ext = _apply_color_offset(solve(views, spec, k, a.camera), a.color_to_depth)
        _report(ext, a.out)
        return 0
    except (ConfigError, CalibrationError, FileNotFoundError, ValueError) as exc:
        print(f"calibrate_extrinsics: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
