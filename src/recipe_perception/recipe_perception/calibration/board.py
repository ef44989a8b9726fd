"""A ChArUco board: its definition, its printed image, and finding it in a camera image (OpenCV objdetect).

OpenCV >= 4.7 has ArUco/ChArUco in the main ``objdetect`` module: ``CharucoDetector.detectBoard`` finds
the chessboard corners between the markers (sub-pixel accurate, and identified, so a partly hidden board
still works) and ``board.matchImagePoints`` pairs them with their 3D positions on the board. The board
frame is OpenCV's: origin at the printed image's top-left chessboard corner, x to the right, y down the
image, z into the board.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recipe_common.cameras import Intrinsics


@dataclass(frozen=True)
class BoardSpec:
    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.04
    marker_m: float = 0.03
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(
                f"a ChArUco board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}"
            )
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(
                f"marker_m ({self.marker_m}) must be positive and smaller than square_m ({self.square_m})"
            )
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100, DICT_4X4_50)")

    @classmethod
    def parse(cls, text: str) -> BoardSpec:
        """``7x5:0.04:0.03:DICT_5X5_100`` (squares, square size m, marker size m, dictionary)."""
        try:
            squares, square, marker, *rest = text.split(":")
            sx, sy = (int(v) for v in squares.lower().split("x"))
            return cls(sx, sy, float(square), float(marker), rest[0] if rest else cls.dictionary)
        except (ValueError, IndexError):
            raise ValueError(
                f"board {text!r}: expected SXxSY:SQUARE_M:MARKER_M[:DICTIONARY], e.g. "
                "7x5:0.04:0.03:DICT_5X5_100"
            ) from None

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    def board(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, d)

    def image(self, px_per_square: int = 100, margin_squares: float = 0.5) -> np.ndarray:
        """The printable board (grey uint8) with a white margin of ``margin_squares`` squares around it
        (the outer black squares need white around them to be found against a dark background)."""
        m = round(margin_squares * px_per_square)
        size = (self.squares_x * px_per_square + 2 * m, self.squares_y * px_per_square + 2 * m)
        return self.board().generateImage(size, marginSize=m)


@dataclass(frozen=True)
class Detection:
    object_points: np.ndarray  # (N, 3) board frame, m
    image_points: np.ndarray  # (N, 2) pixels
    ids: np.ndarray  # (N,) ChArUco corner ids


def detect(image: np.ndarray, spec: BoardSpec) -> Detection | None:
    """The board's identified corners in an image (RGB, BGR or grey), or None (fewer than 6 corners)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    board = spec.board()
    detector = cv2.aruco.CharucoDetector(board)
    corners, ids, _, _ = detector.detectBoard(grey)
    if ids is None or len(ids) < 6:
        return None
    obj, img = board.matchImagePoints(corners, ids)
    return Detection(
        np.asarray(obj, np.float64).reshape(-1, 3),
        np.asarray(img, np.float64).reshape(-1, 2),
        np.asarray(ids).reshape(-1),
    )


def camera_matrix(k: Intrinsics) -> np.ndarray:
    return np.array([[k.fx, 0.0, k.cx], [0.0, k.fy, k.cy], [0.0, 0.0, 1.0]])


def solve_pose(
    object_points: np.ndarray, image_points: np.ndarray, k: Intrinsics, dist: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """(4x4 transform of the points' frame into the camera optical frame, RMS reprojection error px)."""
    if len(object_points) < 4:
        raise ValueError(f"need at least 4 points for a pose, got {len(object_points)}")
    kk = camera_matrix(k)
    d = np.zeros(5) if dist is None else np.asarray(dist, np.float64)
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, kk, d, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError("solvePnP found no pose")
    rvec, tvec = cv2.solvePnPRefineLM(object_points, image_points, kk, d, rvec, tvec)
    t = np.eye(4)
    t[:3, :3] = cv2.Rodrigues(rvec)[0]
    t[:3, 3] = tvec.reshape(3)
    return t, reprojection_rms(object_points, image_points, t, k, d)


def reprojection_rms(
    object_points: np.ndarray,
    image_points: np.ndarray,
    obj_to_cam: np.ndarray,
    k: Intrinsics,
    dist: np.ndarray | None = None,
) -> float:
    rvec = cv2.Rodrigues(obj_to_cam[:3, :3])[0]
    proj, _ = cv2.projectPoints(
        object_points, rvec, obj_to_cam[:3, 3], camera_matrix(k), np.zeros(5) if dist is None else dist
    )
    return float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - image_points) ** 2, axis=1))))
