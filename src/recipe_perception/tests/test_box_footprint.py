import numpy as np
import pytest

from recipe_perception.box_footprint import box_extents, fit_box_footprint


def _side_faces(half_x, half_y, yaw, centre, n=300, noise=0.002, seed=0):
    """Points of the rectangle's edges that face a camera looking towards +along, in (lateral, along)."""
    rng = np.random.default_rng(seed)
    ax, ay = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
    out = []
    for normal, edge, half_n, half_e in ((ax, ay, half_x, half_y), (-ax, ay, half_x, half_y),
                                         (ay, ax, half_y, half_x), (-ay, ax, half_y, half_x)):
        if normal[1] < 0.0:
            t = rng.uniform(-half_e, half_e, n)
            out.append(centre + normal * half_n + t[:, None] * edge)
    p = np.concatenate(out)
    return p + rng.normal(0.0, noise, p.shape)


@pytest.mark.parametrize("half", [(0.10, 0.16), (0.08, 0.12), (0.09, 0.17)])
@pytest.mark.parametrize("yaw_deg", [0, 20, 45, 70, 95, 140])
def test_the_depth_along_the_view_follows_from_the_visible_faces(half, yaw_deg):
    yaw = np.radians(yaw_deg)
    p = _side_faces(*half, yaw, np.array([0.02, 0.45]))
    fit = fit_box_footprint(p[:, 0], p[:, 1], *half)
    assert fit is not None
    _, true_depth = box_extents(*half, yaw)
    assert abs(fit.half_depth - true_depth) < 0.004, (np.degrees(fit.yaw), fit.half_depth, true_depth)
    assert fit.residual < 0.004


def test_too_few_points_give_no_fit():
    assert fit_box_footprint(np.zeros(5), np.zeros(5), 0.1, 0.16) is None
    assert fit_box_footprint(np.full(20, np.nan), np.full(20, np.nan), 0.1, 0.16) is None
