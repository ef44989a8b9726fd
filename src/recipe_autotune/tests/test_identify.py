"""Identifiability verdicts, the D-optimal segment choice, locks and priors, held-out marks: no simulation.

identify() is judged on linear residual models whose answer is known: a parameter the data pins, a pair
that acts identically on the training data (a trade-off), a parameter at the edge of its range.
"""

from __future__ import annotations

import numpy as np
import pytest

from recipe_autotune.design import criterion, greedy_d_optimal
from recipe_autotune.identify import identify, tolerance_units
from recipe_autotune.recording import Recording, RecordingError
from recipe_autotune.space import ParameterSpace, SpaceError
from recipe_common import robot_spec

HAND = "fourier"


def _space(*extra: dict) -> ParameterSpace:
    params = [
        {
            "name": "a",
            "path": "joints.*_elbow_pitch_joint.kp",
            "mode": "scale",
            "range": [0.5, 2.0],
            "sampling": "log",
        },
        {
            "name": "b",
            "path": "joints.*_elbow_pitch_joint.kd",
            "mode": "scale",
            "range": [0.5, 2.0],
            "sampling": "log",
        },
        {
            "name": "c",
            "path": "joints.*_elbow_pitch_joint.damping",
            "mode": "scale",
            "range": [0.5, 2.0],
            "sampling": "log",
        },
        *extra,
    ]
    return ParameterSpace.from_config({"g": {"parameters": params}}, HAND)


class Linear:
    """Residuals r(u) = A (u - u*) + floor, for the training and the held-out sequences."""

    def __init__(self, train: np.ndarray, held: np.ndarray, u_star: np.ndarray, floor: float = 1e-3):
        rng = np.random.default_rng(0)
        self.train, self.held, self.u_star = train, held, u_star
        self.floor_t = floor * rng.standard_normal(train.shape[0]) / np.sqrt(train.shape[0])
        self.floor_h = floor * rng.standard_normal(held.shape[0]) / np.sqrt(held.shape[0])

    def __call__(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.atleast_2d(u) - self.u_star
        return d @ self.train.T + self.floor_t, d @ self.held.T + self.floor_h


def _model(m: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(m) / np.sqrt(m) for _ in range(3))
    train = np.stack([a, b, b], axis=1)  # b and c act identically on the training motion
    held = np.stack([a, b, c], axis=1)  # ... but not on the held-out motion
    return train, held


def test_a_pinned_parameter_is_constrained_and_an_identical_pair_trades_off():
    space = _space()
    train, held = _model()
    u_star = np.full(3, 0.5)
    ident = identify(Linear(train, held, u_star), space, u_star)
    assert list(ident.constrained) == [True, False, False]
    # each of the pair is fully compensated by the other: a +10% change of b is matched by c going down
    assert ident.partner[1] == 2 and ident.partner[2] == 1
    assert ident.partner_change[1] < 0 and ident.partner_share[1] == pytest.approx(1.0, rel=0.05)
    assert np.all(ident.train_rise[1:] < 0.01)
    # fixing the partner (a lock) would determine each of them
    assert ident.determined_if_partner_fixed[1] and ident.determined_if_partner_fixed[2]


def test_a_parameter_at_the_edge_of_its_range_is_flagged_and_not_constrained():
    space = _space()
    train, held = _model()
    u_star = np.array([0.0, 0.5, 0.5])  # the fit hit the lower bound of a
    ident = identify(Linear(train, held, u_star), space, u_star)
    assert ident.at_edge[0] and not ident.constrained[0]
    assert not ident.at_edge[1:].any()


def test_a_fit_that_is_not_at_the_optimum_is_not_called_constrained():
    space = _space()
    train, held = _model()
    u_star = np.full(3, 0.5)
    off = u_star + np.array([0.3, 0.0, 0.0])  # a far off its true value: moving it back lowers the MSE
    ident = identify(Linear(train, held, u_star), space, off)
    assert not ident.constrained[0] and ident.train_rise[0].min() < 0


def test_tolerance_in_the_normalized_range():
    space = _space(
        {
            "name": "o",
            "path": "joints.left_elbow_pitch_joint.pos_offset",
            "mode": "offset",
            "range": [-0.05, 0.05],
        }
    )
    tol = tolerance_units(space, np.array([1.0, 1.0, 1.0, 0.0]), 0.1, 0.005)
    assert tol[0] == pytest.approx(np.log(1.1) / np.log(4.0))
    assert tol[3] == pytest.approx(0.05)


def test_greedy_d_optimal_picks_what_adds_information():
    e1, e2, e3 = np.eye(3)
    infos = np.stack([np.outer(e1, e1), 1.1 * np.outer(e1, e1), np.outer(e2, e2), np.outer(e3, e3) * 0.5])
    chosen = greedy_d_optimal(infos, 3)
    assert sorted(chosen) == [1, 2, 3]  # not both copies of the first direction
    crit = criterion(infos[chosen].mean(axis=0), ["x", "y", "z"])
    assert crit.condition_number == pytest.approx(np.sqrt(1.1 / 0.5))
    assert list(crit.weakest) == ["z"]
    with pytest.raises(ValueError, match="cannot choose"):
        greedy_d_optimal(infos, 5)


def test_locks_and_priors_are_parsed_and_applied():
    space = _space(
        {
            "name": "m",
            "path": ["links.left_*_link.mass_scale"],
            "mode": "absolute",
            "range": [0.8, 1.25],
            "lock": 1.1,
        },
    )
    raw = {
        "g": {
            "parameters": [
                {
                    "name": "a",
                    "path": "joints.*_elbow_pitch_joint.kp",
                    "mode": "scale",
                    "range": [0.5, 2.0],
                    "lock": True,
                },
                {
                    "name": "b",
                    "path": "joints.*_elbow_pitch_joint.kd",
                    "mode": "scale",
                    "range": [0.5, 2.0],
                    "prior": {"std": 0.1},
                },
            ]
        }
    }
    locked = ParameterSpace.from_config(raw, HAND)
    assert [p.name for p in locked.locked] == ["a"] and locked.free().names == ["b"]
    assert locked.parameters[0].lock == 1.0
    # one prior std away from its mean costs prior_weight of MSE
    assert locked.free().prior_residuals(np.array([[1.1]]), 4e-7) ** 2 == pytest.approx(4e-7)
    assert locked.free().prior_residuals(np.array([[1.0]]), 4e-7) == pytest.approx(0.0)
    assert [p.lock for p in space.locked] == [1.1] and space.free().dim == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"lock": 3.0}, r"lock .* must be <= 2.0"),
        ({"lock": True, "prior": {"std": 0.1}}, "exclude each other"),
        ({"prior": {"std": 0.0}}, r"prior.std must be > 0"),
        ({"prior": {"std": 0.1, "spread": 1}}, "unknown key 'spread'"),
    ],
)
def test_bad_locks_and_priors_name_the_key(extra, message):
    param = {
        "name": "a",
        "path": "joints.*_elbow_pitch_joint.kp",
        "mode": "scale",
        "range": [0.5, 2.0],
        **extra,
    }
    with pytest.raises(SpaceError, match=message):
        ParameterSpace.from_config({"g": {"parameters": [param]}}, HAND)


def _recording(n: int = 4, t: int = 12, heldout: tuple[int, ...] = ()) -> Recording:
    rng = np.random.default_rng(0)
    n_state = len(robot_spec.state_joint_names(HAND))
    times = np.tile(np.arange(t) * 0.1, (n, 1))
    return Recording(rng.normal(size=(n, t, 26)), rng.normal(size=(n, t, n_state)), times, HAND, heldout)


def test_held_out_marks_split_subset_combine_and_survive_npz(tmp_path):
    rec = _recording(heldout=(1,))
    assert rec.split() == ([0, 2, 3], [1])
    back = Recording.load(rec.save(tmp_path / "r.npz"))
    assert back.heldout == (1,)
    assert rec.subset([3, 1]).heldout == (1,) and rec.subset([0, 2]).heldout == ()
    both = Recording.combine(rec.subset([0, 2]), rec.subset([1]))
    assert both.split() == ([0, 1], [2])
    # unmarked (a bag, an older file): the last sequences are held out, if one is left to fit
    assert _recording().split(default_heldout=1) == ([0, 1, 2], [3])
    assert _recording(n=1).split(default_heldout=1) == ([0], [])
    with pytest.raises(RecordingError, match="must name sequences in"):
        _recording(n=2, heldout=(2,))
