"""Which fitted parameters the data really determines: re-fit tests on held-out prediction, edges, trade-offs.

A low tracking MSE does not mean every parameter is right: two parameters that act alike (a PD gain and
a zero offset near one pose, damping and armature in slow motion) can trade against each other, and a
parameter the motion never exercises can sit anywhere. A parameter counts as *constrained* here only if
moving it by its tolerance (``report.tolerance``: 10% of its value, ``report.offset_tolerance`` rad for
offsets), in either direction, with every other free parameter re-fitted to the training data, makes
both the training fit and the held-out prediction clearly worse (relative MSE rise above
``report.constrained_threshold``), and it is not at the edge of its range.

The re-fit is a Gauss-Newton step on the training residual Jacobian at the fit (the others compensate
as well as they linearly can), simulated on the training and the held-out sequences, then a second step
of the others from the simulated residual where the first landed (for curved valleys, e.g. the one along
which every torque of an arm scales together). The rise used is the smallest of the simulated and the
linearly predicted ones, so a compensation a linear step gets wrong cannot make a parameter look better
determined than it is. From the same step: the parameter that compensates most is its
trade-off partner (a +tolerance change of one is matched by the partner's change, reported in the
partner's units), and the step re-run with the partner held fixed says whether fixing the partner
(``lock`` or ``prior`` in the config) would determine it.

Cost: 2d + 1 candidates for the (central-difference) Jacobian and 2 x 2d re-fitted candidates, on all
sequences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .space import Parameter, ParameterSpace

SimulateFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # unit (K, d) -> residuals (train, held)


@dataclass
class Identification:
    """Per free parameter (d,) unless noted; rises are relative to the fit's MSE (0.5 = +50%)."""

    tolerance_unit: np.ndarray  # the tolerance in the normalized range
    sensitivity: np.ndarray  # training MSE rise moving it by its tolerance, others fixed (linearized)
    train_rise: np.ndarray  # (d, 2) training MSE rise for -tolerance / +tolerance, others re-fitted
    heldout_rise: np.ndarray  # (d, 2) the same on the held-out sequences (nan without held-out data)
    at_edge: np.ndarray  # bool: within report.edge_fraction of a range end
    constrained: np.ndarray  # bool
    partner: np.ndarray  # the parameter doing most of the compensation (-1: the others undo < half)
    partner_change: np.ndarray  # that parameter's change (its own units) per +tolerance of this one
    partner_share: np.ndarray  # fraction of this parameter's effect the others undo together (0..1)
    determined_if_partner_fixed: np.ndarray  # bool: the rises exceed the threshold with the partner held


def tolerance_units(space: ParameterSpace, x: np.ndarray, relative: float, offset: float) -> np.ndarray:
    """Each parameter's tolerance in its normalized range: ``relative`` of the value for scale and
    absolute parameters (log or linear range), ``offset`` (its own units) for offset parameters."""
    out = np.empty(space.dim)
    for i, p in enumerate(space.parameters):
        out[i] = _unit_step(p, float(x[i]), relative, offset)
    return out


def _unit_step(p: Parameter, value: float, relative: float, offset: float) -> float:
    if p.mode == "offset":
        return offset / (p.high - p.low)
    if p.sampling == "log":
        return float(np.log1p(relative) / np.log(p.high / p.low))
    return relative * abs(value) / (p.high - p.low)


def _lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ridge-regularized least squares (a tiny ridge keeps exactly collinear columns bounded)."""
    if a.shape[1] == 0:
        return np.zeros(0)
    h = a.T @ a
    ridge = 1e-8 * max(float(np.trace(h)) / a.shape[1], 1e-300)
    return np.linalg.solve(h + ridge * np.eye(a.shape[1]), a.T @ b)


def _cd_jacobian(
    simulate: SimulateFn, u: np.ndarray, step: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Residuals at u, and central-difference Jacobians (train, held-out) over +-step, one batch.

    The step is each parameter's tolerance, not a small epsilon: stick-slip in the joints' dry friction
    makes the simulated trajectory jitter by ~0.1 mrad under any tiny parameter change, which swamps a
    small finite difference of a weak parameter. Also returns the training residuals of the 2d probes.
    """
    d = u.size
    up = np.minimum(u + step, 1.0)
    down = np.maximum(u - step, 0.0)
    probes = np.vstack([u, u + np.diag(up - u), u + np.diag(down - u)])
    res_t, res_h = simulate(probes)
    width = np.maximum(up - down, 1e-12)
    jac_t = (res_t[1 : d + 1] - res_t[d + 1 :]).T / width
    jac_h = (res_h[1 : d + 1] - res_h[d + 1 :]).T / width if res_h.size else np.zeros((0, d))
    held0 = res_h[0] if res_h.size else np.zeros(0)
    return res_t[0], held0, jac_t, jac_h, res_t[1:]


def _rise(r0: np.ndarray, jac: np.ndarray, step: np.ndarray) -> float:
    """Linearized MSE change for a parameter step (absolute, rad^2)."""
    return float(np.sum((r0 + jac @ step) ** 2) - np.sum(r0**2))


def identify(
    simulate: SimulateFn,
    space: ParameterSpace,
    u_best: np.ndarray,
    *,
    relative_tolerance: float = 0.1,
    offset_tolerance: float = 0.005,
    threshold: float = 0.1,
    edge_fraction: float = 0.02,
    partner_share_min: float = 0.5,  # a trade-off: the others undo at least this fraction of the effect
) -> Identification:
    """Judge every free parameter at the fit ``u_best`` (normalized); see the module docstring."""
    u_best = np.asarray(u_best, dtype=np.float64)
    d = u_best.size
    x_best = space.from_unit(u_best)
    tol = tolerance_units(space, x_best, relative_tolerance, offset_tolerance)
    r_t, r_h, jac_t, jac_h, probe_t = _cd_jacobian(simulate, u_best, np.maximum(tol, 0.02))
    mse_t, mse_h = float(np.sum(r_t**2)), float(np.sum(r_h**2)) if r_h.size else float("nan")
    floor_t, floor_h = max(mse_t, 1e-300), max(mse_h, 1e-300) if r_h.size else float("nan")

    steps = np.zeros((d, 2, d))  # the re-fitted move for -tol / +tol of each parameter
    predicted = np.zeros((d, 2, 2))  # linearized (train, held-out) rises of those moves
    partner = np.full(d, -1)
    partner_change = np.zeros(d)
    partner_share = np.zeros(d)
    fixed_ok = np.zeros(d, dtype=bool)
    col_norm = np.linalg.norm(jac_t, axis=0)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        comp = -_lstsq(jac_t[:, others], jac_t[:, i])  # others' move per unit move of i
        if others:
            # how much of i's effect the others undo together, and who does most of it
            left = np.sum((jac_t[:, i] + jac_t[:, others] @ comp) ** 2) / max(float(col_norm[i] ** 2), 1e-300)
            k = int(np.argmax(np.abs(comp) * col_norm[others]))
            if 1.0 - left >= partner_share_min:
                j = others[k]
                partner[i], partner_share[i] = j, float(1.0 - left)
                dx = space.from_unit(_moved(u_best, {i: tol[i], j: comp[k] * tol[i]})) - x_best
                partner_change[i] = float(dx[j])
                rest = [o for o in others if o != j]
                comp_fixed = -_lstsq(jac_t[:, rest], jac_t[:, i])
                move = np.zeros(d)
                move[i], move[rest] = tol[i], comp_fixed * tol[i]
                rise_t = _rise(r_t, jac_t, move) / floor_t
                rise_h = _rise(r_h, jac_h, move) / floor_h if r_h.size else rise_t
                fixed_ok[i] = min(rise_t, rise_h) > threshold
        for s, sign in enumerate((-1.0, 1.0)):
            move = np.zeros(d)
            move[i] = sign * tol[i]
            move[others] = comp * sign * tol[i]
            move = np.clip(u_best + move, 0.0, 1.0) - u_best
            steps[i, s] = move
            predicted[i, s, 0] = _rise(r_t, jac_t, move) / floor_t
            predicted[i, s, 1] = _rise(r_h, jac_h, move) / floor_h if r_h.size else np.nan

    # the re-fitted candidates, simulated; then a second Gauss-Newton step of the others from where the
    # first one landed (same Jacobian, the simulated residual), for valleys a straight step misses
    first = np.clip(u_best + steps.reshape(2 * d, d), 0.0, 1.0)
    res_t1, res_h1 = simulate(first)
    second = first.copy()
    for k in range(2 * d):
        others = [j for j in range(d) if j != k // 2]
        second[k, others] -= _lstsq(jac_t[:, others], res_t1[k])
    res_t2, res_h2 = simulate(np.clip(second, 0.0, 1.0))
    sim_t = np.minimum(np.sum(res_t1**2, axis=1), np.sum(res_t2**2, axis=1))
    sim_t = (sim_t - mse_t) / floor_t
    if res_h1.size:
        sim_h = (np.minimum(np.sum(res_h1**2, axis=1), np.sum(res_h2**2, axis=1)) - mse_h) / floor_h
    else:
        sim_h = np.full(2 * d, np.nan)
    train_rise = np.minimum(sim_t.reshape(d, 2), predicted[..., 0])
    heldout_rise = np.minimum(sim_h.reshape(d, 2), predicted[..., 1])
    # others fixed: the simulated +-tolerance probes themselves (mean of both sides)
    probe_cost = np.sum(probe_t**2, axis=1).reshape(2, d)
    sensitivity = (probe_cost.mean(axis=0) - mse_t) / floor_t
    at_edge = (u_best <= edge_fraction) | (u_best >= 1.0 - edge_fraction)
    held = heldout_rise if r_h.size else train_rise
    constrained = (train_rise.min(axis=1) > threshold) & (held.min(axis=1) > threshold) & ~at_edge
    return Identification(
        tolerance_unit=tol,
        sensitivity=sensitivity,
        train_rise=train_rise,
        heldout_rise=heldout_rise,
        at_edge=at_edge,
        constrained=constrained,
        partner=partner,
        partner_change=partner_change,
        partner_share=partner_share,
        determined_if_partner_fixed=fixed_ok & ~constrained,
    )


def _moved(u: np.ndarray, moves: dict[int, float]) -> np.ndarray:
    out = u.copy()
    for i, du in moves.items():
        out[i] += du
    return out
