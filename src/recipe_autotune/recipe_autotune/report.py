"""Fit report: MSE before/after, each parameter with its range, identifiability, tracking overlay plots.

Identifiability is judged two ways, because a low MSE says nothing about parameters the data never
exercised: (1) sensitivity, the relative MSE rise when one parameter moves by +-delta of its normalized
range around the optimum (both sides, averaged where the bound allows); below a threshold the data does
not constrain it; (2) the spread (std in the normalized space) of that parameter over the best candidates
the search found: a wide spread among near-equal fits also means "not constrained".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recipe_common import robot_spec

from .space import ParameterSpace

_EPS = 1e-15


@dataclass
class ParameterFit:
    name: str
    group: str
    mode: str
    low: float
    high: float
    sampling: str
    value: float  # best value (space units: scale factor / offset / absolute)
    manufacturer: float
    unit: float  # best value in the normalized [0, 1] range
    sensitivity: float  # relative MSE rise for a +-delta move in the normalized range, others fixed
    profile: float  # the same with the other parameters re-fitted (decides "constrained")
    most_correlated: str  # the parameter it trades off against most, and the correlation
    correlation: float
    top_spread: float  # std over the best candidates in the normalized range
    constrained: bool
    paths: list[str]
    true_value: float | None = None  # known only for synthetic "real" data


@dataclass
class Identifiability:
    """Local identifiability around the fit (normalized space), from one batch of 2d probe rollouts."""

    sensitivity: np.ndarray  # (d,) relative MSE rise moving one parameter by +-delta, others fixed
    profile: np.ndarray  # (d,) the same with all other parameters re-fitted (linearized): the honest measure
    partner: np.ndarray  # (d,) index of the most correlated other parameter (-1 if d == 1)
    correlation: np.ndarray  # (d,) that correlation (linearized posterior), in [-1, 1]


def identifiability(
    residual_unit: Callable[[np.ndarray], np.ndarray], best_u: np.ndarray, best_cost: float, delta: float
) -> Identifiability:
    """Finite-difference Jacobian of the residuals at the fit, and what it says about each parameter.

    With J the residual Jacobian (sum r^2 = MSE) and C = (J^T J)^-1 (ridge-regularized), moving parameter i
    by delta while re-fitting the others raises the MSE by delta^2 / C_ii (Gauss-Newton). Two parameters
    that act the same way (joint damping and the PD kd; mass and inertia under a stiff loop) each look
    sensitive alone but have a tiny profile rise: the data constrains only their combination.
    """
    best_u = np.asarray(best_u, dtype=np.float64)
    d = best_u.size
    probes, owners, steps = [], [], []
    for i in range(d):
        for sign in (-1.0, 1.0):
            u = best_u.copy()
            u[i] = np.clip(u[i] + sign * delta, 0.0, 1.0)
            if abs(u[i] - best_u[i]) > 1e-9:
                probes.append(u)
                owners.append(i)
                steps.append(u[i] - best_u[i])
    need_center = len(probes) < 2 * d  # some side clipped at a bound: one-sided differences need r(best)
    batch = np.asarray(probes + ([best_u] if need_center else []))
    res = np.asarray(residual_unit(batch), dtype=np.float64)
    res = np.where(np.isfinite(res), res, 1e3)
    r0 = res[-1] if need_center else None
    res = res[: len(probes)]
    costs = np.sum(res**2, axis=1)
    floor = max(best_cost, _EPS)
    sens = np.zeros(d)
    jac = np.zeros((res.shape[1], d))
    for i in range(d):
        mine = [k for k, o in enumerate(owners) if o == i]
        if not mine:
            continue
        sens[i] = float(np.mean([(costs[k] - best_cost) / floor for k in mine]))
        if len(mine) == 2:
            a, b = mine
            jac[:, i] = (res[b] - res[a]) / (steps[b] - steps[a])
        else:
            k = mine[0]
            jac[:, i] = (res[k] - r0) / steps[k]
    h = jac.T @ jac
    ridge = 1e-9 * max(float(np.trace(h)) / max(d, 1), 1e-30)
    cov = np.linalg.inv(h + ridge * np.eye(d))
    diag = np.maximum(np.diag(cov), 1e-300)
    profile = delta**2 / diag / floor
    corr = cov / np.sqrt(np.outer(diag, diag))
    np.fill_diagonal(corr, 0.0)
    partner = np.argmax(np.abs(corr), axis=1) if d > 1 else np.full(d, -1)
    correlation = corr[np.arange(d), partner] if d > 1 else np.zeros(d)
    return Identifiability(sens, profile, partner, correlation)


def top_spread(candidates: np.ndarray, costs: np.ndarray, k: int) -> np.ndarray:
    """(d,) std of the k lowest-cost candidates (normalized space)."""
    candidates = np.asarray(candidates, dtype=np.float64)
    if len(candidates) == 0:
        return np.zeros(0)
    order = np.argsort(np.asarray(costs))[: max(2, k)]
    return candidates[order].std(axis=0)


def parameter_fits(
    space: ParameterSpace,
    best_x: np.ndarray,
    manufacturer_x: np.ndarray,
    ident: Identifiability,
    spread: np.ndarray,
    threshold: float,
    true_values: dict[str, float] | None = None,
) -> list[ParameterFit]:
    unit = space.to_unit(np.asarray(best_x))
    names = space.names
    out = []
    for i, p in enumerate(space.parameters):
        partner = int(ident.partner[i])
        out.append(
            ParameterFit(
                name=p.name,
                group=p.group,
                mode=p.mode,
                low=p.low,
                high=p.high,
                sampling=p.sampling,
                value=float(best_x[i]),
                manufacturer=float(manufacturer_x[i]),
                unit=float(unit[i]),
                sensitivity=float(ident.sensitivity[i]),
                profile=float(ident.profile[i]),
                most_correlated=names[partner] if partner >= 0 else "",
                correlation=float(ident.correlation[i]),
                top_spread=float(spread[i]) if len(spread) else float("nan"),
                constrained=bool(ident.profile[i] > threshold),
                paths=[str(q) for q in p.paths],
                true_value=None if true_values is None else true_values.get(p.name),
            )
        )
    return out


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def write_report(
    out_dir: str | Path,
    *,
    summary: dict,
    fits: Sequence[ParameterFit],
    per_joint: dict[str, list[float]] | None = None,
    figures: Sequence[Path] = (),
) -> tuple[Path, Path]:
    """report.md (human) and report.json (machine) in out_dir; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "summary": summary,
        "parameters": [asdict(f) for f in fits],
        "per_joint_mse": per_joint or {},
        "figures": [str(Path(f).name) for f in figures],
    }
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(payload, indent=2, default=float))

    lines = ["# Autotune fit report", ""]
    lines += ["| quantity | value |", "|---|---|"]
    for key in (
        "untuned_mse",
        "random_search_mse",
        "best_mse",
        "evaluations",
        "sim_steps",
        "policy_steps",
        "elapsed_s",
        "groups",
        "population",
        "refinement_evaluations",
        "seed",
        "overlay",
    ):
        if key in summary:
            value = summary[key]
            lines.append(f"| {key} | {_fmt(value) if isinstance(value, float) else value} |")
    lines += ["", "MSE in rad^2, mean over the scored joints, samples and sequences.", ""]
    has_truth = any(f.true_value is not None for f in fits)
    header = (
        "| parameter | group | mode | range | manufacturer | fitted | unit | sensitivity | profile | "
        "most correlated | top spread | constrained |"
    )
    sep = "|---|---|---|---|---|---|---|---|---|---|---|---|"
    if has_truth:
        header += " true | error |"
        sep += "---|---|"
    lines += ["## Parameters", "", header, sep]
    for f in fits:
        row = (
            f"| {f.name} | {f.group} | {f.mode} ({f.sampling}) | [{_fmt(f.low)}, {_fmt(f.high)}] | "
            f"{_fmt(f.manufacturer)} | {_fmt(f.value)} | {f.unit:.2f} | {_fmt(f.sensitivity)} | "
            f"{_fmt(f.profile)} | {f.most_correlated} ({f.correlation:+.2f}) | {_fmt(f.top_spread)} | "
            f"{'yes' if f.constrained else '**no**'} |"
        )
        if has_truth:
            err = None if f.true_value is None else f.value - f.true_value
            row += f" {_fmt(f.true_value)} | {_fmt(err)} |"
        lines.append(row)
    unconstrained = [f.name for f in fits if not f.constrained]
    lines += [
        "",
        "Sensitivity: relative MSE rise for a move of +-delta of the normalized range around the fit, "
        "the other parameters fixed. Profile: the same rise with the other parameters re-fitted "
        "(Gauss-Newton on the residual Jacobian); a parameter is constrained when its profile rise "
        "exceeds the threshold. A sensitive parameter with a small profile trades off against its most "
        "correlated partner: the data fixes only their combination. Top spread: std (normalized) over "
        "the best candidates found.",
    ]
    lines += [
        "",
        "Not constrained by the data: " + (", ".join(unconstrained) if unconstrained else "none") + ".",
    ]
    if per_joint:
        lines += ["", "## Per-joint MSE", "", "| joint | untuned | tuned |", "|---|---|---|"]
        for name, (before, after) in per_joint.items():
            lines.append(f"| {name} | {before:.3g} | {after:.3g} |")
    if figures:
        lines += ["", "## Tracking overlays (real vs untuned vs tuned)", ""]
        lines += [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def limb_groups(hand: str) -> dict[str, list[str]]:
    """State joints grouped per limb for the overlay figures."""
    return {
        "left_arm": robot_spec.arm_joint_names("left"),
        "right_arm": robot_spec.arm_joint_names("right"),
        "left_hand": robot_spec.hand_actuated_joint_names("left")
        + robot_spec.hand_coupled_joint_names(hand, "left"),
        "right_hand": robot_spec.hand_actuated_joint_names("right")
        + robot_spec.hand_coupled_joint_names(hand, "right"),
    }


def plot_overlays(
    out_dir: str | Path,
    times: np.ndarray,
    real: np.ndarray,
    untuned: np.ndarray,
    tuned: np.ndarray,
    targets: np.ndarray,
    hand: str,
    prefix: str = "tracking",
) -> list[Path]:
    """One PNG per limb, per joint: real vs untuned vs tuned (and the target) over their tracking errors.

    real/untuned/tuned: (T, J) in state_joint_names(hand) order; targets: (T, 26) actuated order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = robot_spec.state_joint_names(hand)
    col = {n: i for i, n in enumerate(names)}
    act = {n: i for i, n in enumerate(robot_spec.actuated_joint_names())}
    paths = []
    for limb, joints in limb_groups(hand).items():
        ncols = 4
        nrows = int(np.ceil(len(joints) / ncols))
        # per joint: positions on top, and below them the tracking error of each model against the real
        # robot (a few mrad do not show at the position scale, and they are what the fit is about)
        fig, axes = plt.subplots(
            2 * nrows,
            ncols,
            figsize=(4 * ncols, 3.4 * nrows),
            squeeze=False,
            sharex=True,
            gridspec_kw={"height_ratios": [2, 1] * nrows},
        )
        for k, joint in enumerate(joints):
            top, bottom = axes[2 * (k // ncols), k % ncols], axes[2 * (k // ncols) + 1, k % ncols]
            j = col[joint]
            if joint in act:
                top.plot(times, targets[:, act[joint]], color="0.7", lw=1, ls=":", label="target")
            top.plot(times, real[:, j], color="k", lw=1.6, label="real")
            top.plot(times, untuned[:, j], color="tab:red", lw=1, ls="--", label="untuned")
            top.plot(times, tuned[:, j], color="tab:blue", lw=1, label="tuned")
            top.set_title(joint, fontsize=8, pad=2)
            bottom.plot(times, 1e3 * (untuned[:, j] - real[:, j]), color="tab:red", lw=0.8, ls="--")
            bottom.plot(times, 1e3 * (tuned[:, j] - real[:, j]), color="tab:blue", lw=0.8)
            bottom.axhline(0.0, color="k", lw=0.5)
            bottom.set_ylabel("err [mrad]", fontsize=7, labelpad=1)
            for ax in (top, bottom):
                ax.tick_params(labelsize=7)
                ax.locator_params(nbins=4)
        for k in range(len(joints), nrows * ncols):
            axes[2 * (k // ncols), k % ncols].set_visible(False)
            axes[2 * (k // ncols) + 1, k % ncols].set_visible(False)
        axes[0, 0].legend(fontsize=7, loc="upper right")
        fig.supxlabel("time [s]", fontsize=8)
        fig.supylabel("joint position [rad]", fontsize=8)
        # fixed margins: tight_layout measures every tick label and costs seconds per figure
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.07, top=0.95, wspace=0.28, hspace=0.35)
        path = out_dir / f"{prefix}_{limb}.png"
        fig.savefig(path, dpi=72)
        plt.close(fig)
        paths.append(path)
    return paths
