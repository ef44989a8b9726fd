"""Contact stickers: exact placements, on-surface property, determinism, world transform, errors."""

import itertools
import math

import numpy as np
import pytest
import torch

from recipe_sim import stickers

BOX = (0.03, 0.04, 0.05)
CYL = (0.03, 0.06)
SPHERE = (0.04,)
SHAPES = {"box": BOX, "cylinder": CYL, "sphere": SPHERE}


def on_surface(shape: str, size, p: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Independent per-shape surface test (not the module's stickers.signed_distance)."""
    if shape == "box":
        ratio = np.abs(p) / np.asarray(size)
        return (np.abs(ratio.max(axis=1) - 1.0) < tol) & (ratio <= 1.0 + tol).all(axis=1)
    if shape == "cylinder":
        r, h = size
        rho = np.hypot(p[:, 0], p[:, 1])
        side = (np.abs(rho - r) < tol) & (np.abs(p[:, 2]) <= h + tol)
        cap = (np.abs(np.abs(p[:, 2]) - h) < tol) & (rho <= r + tol)
        return side | cap
    return np.abs(np.linalg.norm(p, axis=1) - size[0]) < tol


@pytest.mark.parametrize(("shape", "placement", "n"),
                         list(itertools.product(SHAPES, stickers.PLACEMENTS, [None, 1, 2, 5, 13, 40])))
def test_every_sticker_lies_on_the_surface(shape, placement, n):
    pts = stickers.make_stickers(shape, SHAPES[shape], placement, n)
    assert pts.ndim == 2 and pts.shape[1] == 3
    if n is not None:
        assert pts.shape[0] == n
    assert on_surface(shape, SHAPES[shape], pts).all(), pts
    assert np.abs(stickers.signed_distance(shape, SHAPES[shape], pts)).max() < 1e-12


def test_box_side_centres_are_face_centres():
    pts = stickers.make_stickers("box", BOX, "side_centres")
    expected = np.array([[0.03, 0, 0], [0, 0.04, 0], [-0.03, 0, 0], [0, -0.04, 0]])
    np.testing.assert_allclose(pts, expected, atol=1e-15)


def test_box_top_bottom_are_face_centres():
    pts = stickers.make_stickers("box", BOX, "top_bottom")
    np.testing.assert_allclose(pts, [[0, 0, 0.05], [0, 0, -0.05]])


def test_sphere_top_bottom_are_poles_and_side_centres_the_equator():
    poles = stickers.make_stickers("sphere", SPHERE, "top_bottom")
    np.testing.assert_allclose(poles, [[0, 0, 0.04], [0, 0, -0.04]])
    eq = stickers.make_stickers("sphere", SPHERE, "side_centres", 4)
    np.testing.assert_allclose(eq, [[0.04, 0, 0], [0, 0.04, 0], [-0.04, 0, 0], [0, -0.04, 0]], atol=1e-15)


def test_cylinder_side_centres_ring_at_mid_height():
    pts = stickers.make_stickers("cylinder", CYL, "side_centres", 6)
    np.testing.assert_allclose(pts[:, 2], 0.0)
    np.testing.assert_allclose(np.hypot(pts[:, 0], pts[:, 1]), 0.03)
    angles = np.sort(np.mod(np.arctan2(pts[:, 1], pts[:, 0]), 2 * math.pi))
    np.testing.assert_allclose(np.diff(angles), 2 * math.pi / 6)


def test_bottom_edges_lie_on_bottom_edges():
    box = stickers.make_stickers("box", BOX, "bottom_edges", 12)
    np.testing.assert_allclose(box[:, 2], -0.05)
    on_edge = np.isclose(np.abs(box[:, 0]), 0.03) | np.isclose(np.abs(box[:, 1]), 0.04)
    assert on_edge.all()
    cyl = stickers.make_stickers("cylinder", CYL, "bottom_edges")
    np.testing.assert_allclose(cyl[:, 2], -0.06)
    np.testing.assert_allclose(np.hypot(cyl[:, 0], cyl[:, 1]), 0.03)
    sph = stickers.make_stickers("sphere", SPHERE, "bottom_edges")
    assert (sph[:, 2] < 0).all()


def test_side_centres_spread_over_all_four_box_faces():
    pts = stickers.make_stickers("box", BOX, "side_centres", 8)
    faces = {(int(np.sign(x)) if np.isclose(abs(x), 0.03) else 0, int(np.sign(y)) if np.isclose(abs(y), 0.04)
              else 0) for x, y, _ in pts}
    assert faces == {(1, 0), (-1, 0), (0, 1), (0, -1)}
    np.testing.assert_allclose(pts[:, 2], 0.0)


def test_all_placement_covers_every_face_and_has_no_duplicates():
    box = stickers.make_stickers("box", BOX, "all", 32)
    for axis, sign in itertools.product(range(3), (1, -1)):
        assert np.isclose(box[:, axis], sign * BOX[axis]).any(), (axis, sign)
    for shape, size in SHAPES.items():
        pts = stickers.make_stickers(shape, size, "all", 50)
        gaps = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(50)
        assert gaps.min() > 1e-4, shape
    sph = stickers.make_stickers("sphere", SPHERE, "all", 200)
    assert np.linalg.norm(sph.mean(axis=0)) < 0.002  # balanced: no hemisphere favoured
    cyl = stickers.make_stickers("cylinder", CYL, "all", 40)
    caps = np.isclose(np.abs(cyl[:, 2]), 0.06) & (np.hypot(cyl[:, 0], cyl[:, 1]) < 0.03 - 1e-9)
    # area share of the caps: 2 pi r^2 / (2 pi r^2 + 4 pi r h) = 2r / (2r + 4h) = 0.2
    assert caps.sum() == 8


def test_deterministic():
    for shape, size in SHAPES.items():
        for placement in stickers.PLACEMENTS:
            np.testing.assert_array_equal(stickers.make_stickers(shape, size, placement, 9),
                                          stickers.make_stickers(shape, list(size), placement, 9))


@pytest.mark.parametrize(("args", "match"), [
    (("cone", (0.1,), "all"), "unknown shape 'cone'"),
    (("box", BOX, "corners"), "unknown sticker placement 'corners'"),
    (("box", (0.1, 0.1), "all"), "box size needs 3 values"),
    (("cylinder", (0.1,), "all"), "cylinder size needs 2 values"),
    (("sphere", (0.0,), "all"), "finite and positive"),
    (("box", (0.1, -0.1, 0.1), "all"), "finite and positive"),
    (("box", (0.1, float("nan"), 0.1), "all"), "finite and positive"),
])
def test_bad_arguments_raise(args, match):
    with pytest.raises(ValueError, match=match):
        stickers.make_stickers(*args)


@pytest.mark.parametrize("n", [0, -3, True, 2.5])
def test_bad_count_raises(n):
    with pytest.raises(ValueError, match="positive integer"):
        stickers.make_stickers("box", BOX, "all", n)


def test_signed_distance_inside_and_outside():
    assert stickers.signed_distance("box", BOX, np.zeros(3)) == pytest.approx(-0.03)
    assert stickers.signed_distance("box", BOX, np.array([0.06, 0.0, 0.0])) == pytest.approx(0.03)
    corner_gap = stickers.signed_distance("box", BOX, np.array([0.04, 0.05, 0.0]))
    assert corner_gap == pytest.approx(math.hypot(0.01, 0.01))
    assert stickers.signed_distance("cylinder", CYL, np.array([0.0, 0.0, 0.1])) == pytest.approx(0.04)
    assert stickers.signed_distance("sphere", SPHERE, np.array([0.0, 0.1, 0.0])) == pytest.approx(0.06)


def test_world_transform_translation_and_rotation():
    local = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    half = math.sqrt(0.5)
    quat = torch.tensor([[half, 0.0, 0.0, half],   # +90 deg about z
                         [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    out = stickers.stickers_world(local, pos, quat)
    assert out.shape == (2, 2, 3)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(out[1], torch.tensor([[2.0, 2.0, 3.0], [1.0, 2.0, 5.0]], dtype=torch.float64))


def test_world_transform_matches_mujoco_for_random_poses():
    mujoco = pytest.importorskip("mujoco")
    rng = np.random.default_rng(3)
    local = rng.normal(size=(5, 7, 3))
    pos = rng.normal(size=(5, 3))
    quat = rng.normal(size=(5, 4)) * 3.0  # deliberately not unit length
    out = stickers.stickers_world(local, pos, quat).numpy()
    for e in range(5):
        q = quat[e] / np.linalg.norm(quat[e])
        for j in range(7):
            ref = np.zeros(3)
            mujoco.mju_rotVecQuat(ref, local[e, j], q)
            np.testing.assert_allclose(out[e, j], ref + pos[e], atol=1e-12)


def test_world_transform_rejects_bad_input():
    local = np.zeros((3, 3))
    with pytest.raises(ValueError, match="obj_quat must have shape"):
        stickers.stickers_world(local, np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="zero-length quaternion"):
        stickers.stickers_world(local, np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="obj_pos must have shape"):
        stickers.stickers_world(local, np.zeros((2, 4)), np.eye(4)[:2])
    with pytest.raises(ValueError, match="stickers_local has 3 envs, expected 2"):
        stickers.stickers_world(np.zeros((3, 4, 3)), np.zeros((2, 3)), np.tile([1.0, 0, 0, 0], (2, 1)))


def test_min_dist_hand_computed():
    a = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    x = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    torch.testing.assert_close(stickers.min_dist(a, x), torch.tensor([[2.0, 2.0, 0.5, 0.0]]))
