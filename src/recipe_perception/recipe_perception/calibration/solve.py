"""Camera pose in base_link from board views: a board at known poses, or a board carried by the hand.

* ``from_board``: the board lies at a pose the user knows in base_link (a fixture on the table, measured
  from the robot). Every detected corner then has a known base_link position, and one PnP over all
  corners of all views gives the camera pose directly.
* ``from_hand_eye``: the board is fixed to the hand at an unknown offset and the robot moves it to N
  poses (their gripper-to-base transforms from the joint states and the model). The camera is static, so
  this is the eye-to-hand case of hand-eye calibration (AX = XB, solved as OpenCV's calibrateHandEye
  does with Park-Martin), refined by minimising the reprojection error of every corner over the camera
  pose and the board's pose on the hand. About 10-30 well spread poses (rotations about different axes).

Both report the RMS reprojection error of all corners under the solution, in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from recipe_common.cameras import Intrinsics, camera_table
from recipe_perception.calibration.board import BoardSpec, Detection, detect, solve_pose
from recipe_perception.extrinsics import CameraExtrinsics


class CalibrationError(ValueError):
    """Too few usable views, or a degenerate set."""


@dataclass(frozen=True)
class View:
    image: np.ndarray
    pose: np.ndarray  # 4x4: board_to_base (from_board) or gripper_to_base (from_hand_eye)
    name: str = ""


def _detections(views: Sequence[View], spec: BoardSpec) -> list[tuple[View, Detection]]:
    out, missing = [], []
    for v in views:
        det = detect(v.image, spec)
        if det is None:
            missing.append(v.name or "?")
        else:
            out.append((v, det))
    if missing:
        print(f"calibration: no board found in {len(missing)} view(s): {missing}")
    return out


def from_board(
    views: Sequence[View], spec: BoardSpec, k: Intrinsics, camera: str, dist: np.ndarray | None = None
) -> CameraExtrinsics:
    dets = _detections(views, spec)
    if not dets:
        raise CalibrationError("the board was found in none of the views")
    obj = np.concatenate([d.object_points @ v.pose[:3, :3].T + v.pose[:3, 3] for v, d in dets])
    img = np.concatenate([d.image_points for _, d in dets])
    base_to_cam, rms = solve_pose(obj, img, k, dist)
    return CameraExtrinsics(
        camera=camera,
        cam_to_parent=np.linalg.inv(base_to_cam),
        method="charuco_board",
        child_frame=_frame_id(camera),
        reprojection_error_px=rms,
        views=len(dets),
        intrinsics=k,
        notes={"corners": len(obj), "board": _board_note(spec)},
    )


def from_hand_eye(
    views: Sequence[View], spec: BoardSpec, k: Intrinsics, camera: str, dist: np.ndarray | None = None
) -> CameraExtrinsics:
    dets = _detections(views, spec)
    if len(dets) < 3:
        raise CalibrationError(f"hand-eye needs at least 3 views with the board found, got {len(dets)}")
    board_to_cam = [solve_pose(d.object_points, d.image_points, k, dist)[0] for _, d in dets]
    grip = [v.pose for v, _ in dets]
    cam_to_base = hand_eye_park_martin(grip, board_to_cam)
    board_to_gripper = _board_on_hand(grip, board_to_cam, cam_to_base)
    cam_to_base, board_to_gripper, rms = _refine(dets, grip, cam_to_base, board_to_gripper, k, dist)
    return CameraExtrinsics(
        camera=camera,
        cam_to_parent=cam_to_base,
        method="hand_eye",
        child_frame=_frame_id(camera),
        reprojection_error_px=rms,
        views=len(dets),
        intrinsics=k,
        notes={
            "board": _board_note(spec),
            "solver": "Park-Martin + reprojection refinement",
            "board_to_gripper_translation": [round(float(x), 5) for x in board_to_gripper[:3, 3]],
        },
    )


def hand_eye_park_martin(
    gripper_to_base: Sequence[np.ndarray], board_to_cam: Sequence[np.ndarray]
) -> np.ndarray:
    """cam_to_base X of a static camera seeing a board on the hand: X C_i = G_i Y for every view i.

    Pairs of views give A X = X B with A = G_j G_i^-1 (the hand's motion in base_link) and
    B = C_j C_i^-1 (the board's motion seen by the camera); Park and Martin (1994): the rotation aligns
    the motions' rotation axes (log R_A = R_X log R_B, solved in closed form), the translation follows from
    (R_A - I) t_X = R_X t_B - t_A by least squares. (OpenCV's calibrateHandEye does the same; its Python
    binding is missing from opencv-python 5.0.)
    """
    n = len(gripper_to_base)
    alphas, betas, pairs = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            a = gripper_to_base[j] @ np.linalg.inv(gripper_to_base[i])
            b = board_to_cam[j] @ np.linalg.inv(board_to_cam[i])
            ra, rb = Rotation.from_matrix(a[:3, :3]).as_rotvec(), Rotation.from_matrix(b[:3, :3]).as_rotvec()
            if np.linalg.norm(ra) < np.radians(2.0):
                continue  # too small a rotation to say anything about the axis
            alphas.append(ra)
            betas.append(rb)
            pairs.append((a, b))
    if len(pairs) < 2:
        raise CalibrationError(
            "hand-eye: the hand poses do not rotate enough (need rotations about at least two different axes)"
        )
    m = np.einsum("ki,kj->ij", np.asarray(betas), np.asarray(alphas))  # sum of beta alpha^T
    u, _, vt = np.linalg.svd(m)
    fix = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(vt.T @ u.T)))])
    r_x = vt.T @ fix @ u.T
    lhs = np.concatenate([a[:3, :3] - np.eye(3) for a, _ in pairs])
    rhs = np.concatenate([r_x @ b[:3, 3] - a[:3, 3] for a, b in pairs])
    t_x = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    x = np.eye(4)
    x[:3, :3], x[:3, 3] = r_x, t_x
    return x


def _board_on_hand(
    grip: Sequence[np.ndarray], board_to_cam: Sequence[np.ndarray], cam_to_base: np.ndarray
) -> np.ndarray:
    on_hand = [np.linalg.inv(g) @ cam_to_base @ c for g, c in zip(grip, board_to_cam, strict=True)]
    y = np.eye(4)
    y[:3, :3] = Rotation.from_matrix(np.stack([m[:3, :3] for m in on_hand])).mean().as_matrix()
    y[:3, 3] = np.mean([m[:3, 3] for m in on_hand], axis=0)
    return y


def _pose(v: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = Rotation.from_rotvec(v[:3]).as_matrix()
    t[:3, 3] = v[3:]
    return t


def _vec(t: np.ndarray) -> np.ndarray:
    return np.concatenate([Rotation.from_matrix(t[:3, :3]).as_rotvec(), t[:3, 3]])


def _refine(
    dets: list[tuple[View, Detection]],
    grip: Sequence[np.ndarray],
    x0: np.ndarray,
    y0: np.ndarray,
    k: Intrinsics,
    dist: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Camera and board-on-hand poses minimising every corner's reprojection error (Levenberg-Marquardt)."""
    from scipy.optimize import least_squares

    kk = np.array([[k.fx, 0.0, k.cx], [0.0, k.fy, k.cy], [0.0, 0.0, 1.0]])
    d = np.zeros(5) if dist is None else np.asarray(dist, np.float64)

    def residuals(p: np.ndarray) -> np.ndarray:
        x_inv, y = np.linalg.inv(_pose(p[:6])), _pose(p[6:])
        out = []
        for (_, det), g in zip(dets, grip, strict=True):
            t = x_inv @ g @ y
            proj, _ = cv2.projectPoints(det.object_points, cv2.Rodrigues(t[:3, :3])[0], t[:3, 3], kk, d)
            out.append((proj.reshape(-1, 2) - det.image_points).ravel())
        return np.concatenate(out)

    sol = least_squares(residuals, np.concatenate([_vec(x0), _vec(y0)]), method="lm")
    r = sol.fun.reshape(-1, 2)
    return _pose(sol.x[:6]), _pose(sol.x[6:]), float(np.sqrt(np.mean(np.sum(r * r, axis=1))))


def _frame_id(camera: str) -> str:
    table = camera_table()
    return table[camera].frame_id if camera in table else f"{camera}_depth_optical_frame"


def _board_note(spec: BoardSpec) -> str:
    return f"{spec.squares_x}x{spec.squares_y}:{spec.square_m}:{spec.marker_m}:{spec.dictionary}"
