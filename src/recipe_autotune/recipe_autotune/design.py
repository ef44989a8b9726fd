"""Choose the calibration motion by how well it determines the parameters, within the real-robot budget.

The robot's time is the scarce resource (the paper's ~2000 steps at 10 Hz), simulation is cheap. So a
pool of ``design_pool`` times as many segments as the budget holds is drawn (segments.py: holds, steps,
single-joint moves), each is simulated on the manufacturer model with every free parameter nudged in
turn (forward differences in the normalized space), and segments are picked greedily to maximise
log det(J^T J), the D-optimal criterion: the volume of the region of parameters the data can tell apart.
A segment whose information repeats what is already picked adds little; one that pins a direction
nothing else pins (kp against an offset, damping against armature) adds a lot. Segments start and end at
home, so their information adds up.

The criterion is reported (``DesignCriterion``): log det per parameter, the condition number of the
Jacobian, and the least-determined direction, for the chosen segments and for the same number taken in
pool order without the criterion. Held-out sequences (``validation``) are made here too: a different
signal family around a different pose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from recipe_common import robot_spec

from .calibration import generate_sequences
from .config import SEGMENT_FAMILIES, AutotuneConfig
from .job import AutotuneJob
from .recording import Recording
from .segments import Segment, SegmentMaker, assemble
from .space import ParameterSpace
from .stopping import StopFn, check, never
from .tracking import SimEvaluator, manufacturer_params

if TYPE_CHECKING:
    from .clearance import ClearanceChecker

FD_STEP = 0.05  # forward-difference step in the normalized space (5% of each parameter's range)


@dataclass
class DesignCriterion:
    """Identifiability of a motion on the manufacturer model (J: sensitivity of the tracking residuals to
    the normalized parameters, scaled so that J^T J is the Gauss-Newton Hessian of the MSE)."""

    log_det_per_parameter: float  # mean log eigenvalue of J^T J: higher is better
    condition_number: float  # sqrt(max / min eigenvalue): how much worse the worst direction is
    weakest: dict[str, float]  # the least-determined direction (parameter -> weight, largest first)
    families: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_det_per_parameter": self.log_det_per_parameter,
            "condition_number": self.condition_number,
            "weakest_direction": self.weakest,
            "families": self.families,
        }


@dataclass
class Design:
    train: np.ndarray  # (N, T, 26) training sequences
    heldout: np.ndarray  # (M, T, 26) held-out sequences
    families: list[list[str]]  # segment families of each training sequence
    chosen: DesignCriterion  # of the selected segments
    unselected: DesignCriterion  # of as many pool segments in pool order (what no criterion would give)
    pool: int  # segments simulated
    sim_steps: int  # physics steps spent on the design

    def criteria(self) -> dict[str, Any]:
        """The criteria for the report: chosen segments vs the same number taken without the criterion."""
        return {
            "designed (chosen by the criterion)": self.chosen.to_dict(),
            "pool order (no criterion)": self.unselected.to_dict(),
            "pool_segments": self.pool,
            "families_per_sequence": self.families,
        }


def criterion(info: np.ndarray, names: list[str], families: Counter | None = None) -> DesignCriterion:
    """DesignCriterion of an information matrix J^T J (d x d)."""
    eig, vec = np.linalg.eigh(0.5 * (info + info.T))
    eig = np.maximum(eig, 1e-300)
    weakest = vec[:, 0]
    order = np.argsort(-np.abs(weakest))[:4]
    return DesignCriterion(
        log_det_per_parameter=float(np.mean(np.log(eig))),
        condition_number=float(np.sqrt(eig[-1] / eig[0])),
        weakest={names[i]: round(float(weakest[i]), 3) for i in order if abs(weakest[i]) > 0.1},
        families=dict(families or {}),
    )


def greedy_d_optimal(infos: np.ndarray, count: int) -> list[int]:
    """Indices of ``count`` items (infos: (P, d, d)) chosen one by one to maximise log det of their sum."""
    p, d, _ = infos.shape
    if count > p:
        raise ValueError(f"cannot choose {count} of {p} segments")
    ridge = 1e-9 * max(float(np.mean(np.trace(infos, axis1=1, axis2=2))) / max(d, 1), 1e-300)
    total = ridge * np.eye(d)
    chosen: list[int] = []
    free = np.ones(p, dtype=bool)
    for _ in range(count):
        scores = np.full(p, -np.inf)
        for i in np.flatnonzero(free):
            scores[i] = np.linalg.slogdet(total + infos[i])[1]
        best = int(np.argmax(scores))
        chosen.append(best)
        free[best] = False
        total = total + infos[best]
    return chosen


def _start_state(q26: np.ndarray, hand: str) -> np.ndarray:
    """Joint positions in state order for actuated positions q26 (coupled joints on the manufacturer k, b)."""
    actuated = robot_spec.actuated_joint_names()
    out = list(q26)
    for side in robot_spec.SIDES:
        prefix = robot_spec.HAND_PREFIX[side]
        for c in robot_spec.get_hand(hand).couplings:
            out.append(c.k * q26[actuated.index(f"{prefix}_{c.actuated_suffix}_joint")] + c.b)
    return np.asarray(out)


def segment_information(
    segments: list[Segment],
    space: ParameterSpace,
    base_params: Any,
    hand: str,
    rate_hz: float,
    threads: int = 2,
    should_stop: StopFn = never,
) -> tuple[np.ndarray, int]:
    """(P, d, d) J_s^T J_s of each segment at the manufacturer model, and the physics steps it took."""
    targets = np.stack([s.targets for s in segments])
    n, t, _ = targets.shape
    start = _start_state(targets[0, 0], hand)
    measured = np.broadcast_to(start, (n, t, len(start))).copy()
    times = np.tile(np.arange(t) / rate_hz, (n, 1))
    design_rec = Recording(targets, measured, times, hand)
    with SimEvaluator(
        design_rec, space, threads=threads, contacts="off", base_params=base_params, should_stop=should_stop
    ) as ev:
        u0 = space.to_unit(space.manufacturer_values(base_params))
        steps = np.where(u0 + FD_STEP <= 1.0, FD_STEP, -FD_STEP)
        probes = np.vstack([u0, u0 + np.diag(steps)])
        sim = ev.simulate(space.from_unit(probes))[..., 1:, :]  # (d+1, P, T-1, J)
        sim = sim[..., ev.scored_joints]
        jac = (sim[1:] - sim[:1]) / steps[:, None, None, None]  # (d, P, T-1, J)
        jac = np.moveaxis(jac, 0, -1).reshape(n, -1, space.dim)  # (P, m_s, d)
        # per residual: the mean over segments is J^T J of their concatenation (MSE normalisation)
        info = np.einsum("pmi,pmj->pij", jac, jac) / jac.shape[1]
        return info, ev.sim_steps


def heldout_sequences(
    config: AutotuneConfig, seed: int, clearance: ClearanceChecker | None = None
) -> np.ndarray:
    """(M, T, 26) held-out sequences: validation.signals around validation.home (M may be 0)."""
    val = config.validation
    cal = config.calibration
    if val.num_sequences == 0:
        return np.zeros((0, round(cal.duration_s * cal.command_rate_hz), robot_spec.ACTION_DIM))
    held_cal = replace(cal, home={**cal.home, **val.home}, signals=val.signals)
    return generate_sequences(held_cal, config.hand, seed, val.num_sequences, clearance)


def design_calibration(
    config: AutotuneConfig,
    space: ParameterSpace,
    base_params: Any,
    seed: int,
    num_sequences: int | None = None,
    clearance: ClearanceChecker | None = None,
    should_stop: StopFn = never,
) -> Design:
    """Training sequences picked from a simulated pool by the D-optimal criterion, plus the held-out ones.

    ``space`` is the free parameter space (locked parameters are part of ``base_params``). A config
    whose calibration.signals are broadband (multisine, chirp, filtered_steps) gets those sequences as
    they are, with their criterion reported: there is nothing to choose from.
    """
    cal = config.calibration
    n_seq = cal.num_sequences if num_sequences is None else int(num_sequences)
    if cal.signals[0] not in SEGMENT_FAMILIES:
        return _broadband_design(config, space, base_params, seed, n_seq, clearance, should_stop)
    maker = SegmentMaker(cal, config.hand, clearance)
    needed = n_seq * maker.layout.per_sequence
    pool_size = max(needed, int(np.ceil(cal.design_pool * needed)))
    families = list(cal.signals)
    pool = []
    for i in range(pool_size):
        check(should_stop)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1_000_003, i])
        pool.append(maker.make(families[i % len(families)], rng))
    infos, sim_steps = segment_information(
        pool, space, base_params, config.hand, cal.command_rate_hz, config.evaluation.threads, should_stop
    )
    chosen = greedy_d_optimal(infos, needed)
    picked = [pool[i] for i in chosen]
    names = space.names
    count = Counter(s.family for s in picked)
    m = maker.layout.per_sequence
    return Design(
        train=assemble(picked, maker.layout, maker.home),
        heldout=heldout_sequences(config, seed, clearance),
        families=[[s.family for s in picked[k * m : (k + 1) * m]] for k in range(n_seq)],
        chosen=criterion(infos[chosen].mean(axis=0), names, count),
        unselected=criterion(infos[:needed].mean(axis=0), names, Counter(s.family for s in pool[:needed])),
        pool=pool_size,
        sim_steps=sim_steps,
    )


def _broadband_design(
    config: AutotuneConfig,
    space: ParameterSpace,
    base_params: Any,
    seed: int,
    n_seq: int,
    clearance: ClearanceChecker | None,
    should_stop: StopFn,
) -> Design:
    cal = config.calibration
    train = generate_sequences(cal, config.hand, seed, n_seq, clearance)
    families = [cal.signals[k % len(cal.signals)] for k in range(n_seq)]
    whole = [Segment(f, t) for f, t in zip(families, train, strict=True)]
    infos, sim_steps = segment_information(
        whole, space, base_params, config.hand, cal.command_rate_hz, config.evaluation.threads, should_stop
    )
    crit = criterion(infos.mean(axis=0), space.names, Counter(families))
    return Design(
        train=train,
        heldout=heldout_sequences(config, seed, clearance),
        families=[[f] for f in families],
        chosen=crit,
        unselected=crit,
        pool=0,
        sim_steps=sim_steps,
    )


def design_for_job(
    config: AutotuneConfig, job: AutotuneJob, clearance: ClearanceChecker | None, should_stop: StopFn = never
) -> Design:
    """design_calibration for a job: its groups (locks applied), seed and number of sequences."""
    space = config.space.select(job.groups)
    base = space.locked_params(manufacturer_params(config.hand))
    return design_calibration(config, space.free(), base, job.seed, job.num_sequences, clearance, should_stop)
