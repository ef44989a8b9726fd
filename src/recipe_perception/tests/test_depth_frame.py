"""Decoding and checking depth frames: every malformed input is a FrameError naming the reason."""

import numpy as np
import pytest

from recipe_common.cameras import Intrinsics
from recipe_perception.depth_frame import FrameError, decode_depth, intrinsics_from_info

K = Intrinsics.from_fovy(58.0, 8, 6)


def _mm(depth_mm: np.ndarray, **kw):
    args = {
        "encoding": "16UC1",
        "width": depth_mm.shape[1],
        "height": depth_mm.shape[0],
        "step": 2 * depth_mm.shape[1],
        "is_bigendian": False,
        "data": depth_mm.astype("<u2").tobytes(),
    }
    args.update(kw)
    return args


def test_16uc1_millimetres_with_zero_holes():
    d = np.full((6, 8), 1234, np.uint16)
    d[0, 0] = 0
    out, valid = decode_depth(**_mm(d), intrinsics=K)
    assert out.dtype == np.float32 and out[1, 1] == pytest.approx(1.234)
    assert np.isnan(out[0, 0]) and valid == pytest.approx(47 / 48)


def test_32fc1_metres_nan_inf_and_negative_are_holes():
    d = np.full((6, 8), 0.8, np.float32)
    d[0, :4] = [np.nan, np.inf, -1.0, 0.0]
    out, _ = decode_depth("32FC1", 8, 6, 32, False, d.astype("<f4").tobytes(), K)
    assert np.isnan(out[0, :4]).all() and out[3, 3] == pytest.approx(0.8)


def test_big_endian_and_padded_rows():
    d = np.full((6, 8), 500, np.uint16)
    padded = np.zeros((6, 10), ">u2")
    padded[:, :8] = d
    out, _ = decode_depth("16UC1", 8, 6, 20, True, padded.tobytes(), K)
    assert np.allclose(out, 0.5)


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({"encoding": "rgb8"}, "encoding 'rgb8' is not supported"),
        ({"width": 7}, "7x6 but its camera_info says 8x6"),
        ({"step": 10}, "step 10 is shorter than a row"),
        ({"data": b"\0" * 10}, "has 10 bytes, expected"),
    ],
)
def test_malformed_frames_name_the_reason(kw, reason):
    with pytest.raises(FrameError, match=reason):
        decode_depth(**_mm(np.full((6, 8), 1000, np.uint16), **kw), intrinsics=K)


def test_all_zero_and_all_nan_frames_are_rejected():
    with pytest.raises(FrameError, match="all-zero/NaN"):
        decode_depth(**_mm(np.zeros((6, 8), np.uint16)), intrinsics=K)
    nan = np.full((6, 8), np.nan, np.float32)
    with pytest.raises(FrameError, match="all-zero/NaN"):
        decode_depth("32FC1", 8, 6, 32, False, nan.tobytes(), K)
    sparse = np.zeros((6, 8), np.uint16)
    sparse[0, 0] = 900
    with pytest.raises(FrameError, match=r"only 2\.1% valid"):
        decode_depth(**_mm(sparse), intrinsics=K, min_valid_fraction=0.05)


def test_camera_info_must_have_a_usable_k():
    assert intrinsics_from_info(8, 6, K.k()) == K
    with pytest.raises(FrameError, match="non-positive focal"):
        intrinsics_from_info(8, 6, [0.0] * 9)
    with pytest.raises(FrameError, match="9 finite numbers"):
        intrinsics_from_info(8, 6, [1.0] * 4)
