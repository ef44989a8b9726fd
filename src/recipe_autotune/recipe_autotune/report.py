"""Fit report: MSE before/after on training and held-out motion, each parameter with its range and its
identifiability verdict (identify.py), trade-offs, locked parameters, the excitation criterion, warnings,
per-joint MSE and tracking overlay plots (report.md for people, report.json for tools).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec

from .identify import Identification
from .space import Parameter, ParameterSpace


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
    sensitivity: float  # training MSE rise for a tolerance move, others fixed
    train_rise: float  # smallest training MSE rise for a +-tolerance move, others re-fitted
    heldout_rise: float  # the same on the held-out sequences (the verdict's measure)
    constrained: bool
    at_edge: bool
    tradeoff: str  # the parameter that compensates it most ("" if none)
    tradeoff_change: float  # that parameter's change (its units) per +tolerance of this one
    tradeoff_share: float  # fraction of this parameter's effect the others undo together
    determined_if_partner_fixed: bool
    prior_std: float | None
    paths: list[str]
    true_value: float | None = None  # known only for synthetic "real" data

    @property
    def verdict(self) -> str:
        if self.constrained:
            return "constrained"
        if self.at_edge:
            return "at range edge"
        if self.tradeoff:
            return f"trades off with {self.tradeoff}"
        return "not constrained"


def parameter_fits(
    space: ParameterSpace,
    best_x: np.ndarray,
    manufacturer_x: np.ndarray,
    ident: Identification,
    true_values: dict[str, float] | None = None,
) -> list[ParameterFit]:
    """One ParameterFit per free parameter, from the fit and its Identification."""
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
                train_rise=float(np.min(ident.train_rise[i])),
                heldout_rise=float(np.min(ident.heldout_rise[i])),
                constrained=bool(ident.constrained[i]),
                at_edge=bool(ident.at_edge[i]),
                tradeoff=names[partner] if partner >= 0 else "",
                tradeoff_change=float(ident.partner_change[i]),
                tradeoff_share=float(ident.partner_share[i]),
                determined_if_partner_fixed=bool(ident.determined_if_partner_fixed[i]),
                prior_std=p.prior_std,
                paths=[str(q) for q in p.paths],
                true_value=None if true_values is None else true_values.get(p.name),
            )
        )
    return out


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v:.4g}"


def _tolerance_text(f: ParameterFit, tolerance: dict[str, float]) -> str:
    if f.mode == "offset":
        return f"{tolerance['offset']:g} rad"
    return f"{tolerance['relative']:.0%}"


def _change_text(change: float, partner: ParameterFit) -> str:
    if partner.mode == "offset":
        return f"{change:+.4f} rad"
    return f"{change / max(abs(partner.value), 1e-12):+.1%}"


def write_report(
    out_dir: str | Path,
    *,
    summary: dict[str, Any],
    fits: Sequence[ParameterFit],
    locked: Sequence[Parameter] = (),
    warnings: Sequence[str] = (),
    design: dict[str, Any] | None = None,
    tolerance: dict[str, float] | None = None,
    per_joint: dict[str, list[float]] | None = None,
    figures: Sequence[Path] = (),
) -> tuple[Path, Path]:
    """report.md (human) and report.json (machine) in out_dir; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tolerance = tolerance or {"relative": 0.1, "offset": 0.005}
    payload = {
        "summary": summary,
        "warnings": list(warnings),
        "parameters": [{**asdict(f), "verdict": f.verdict} for f in fits],
        "locked": [{"name": p.name, "group": p.group, "value": p.lock} for p in locked],
        "design": design or {},
        "per_joint_mse": per_joint or {},
        "figures": [str(Path(f).name) for f in figures],
    }
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(payload, indent=2, default=float))
    lines = ["# Autotune fit report", ""]
    lines += _warning_lines(warnings)
    lines += _summary_lines(summary)
    lines += _parameter_lines(fits, tolerance)
    lines += _tradeoff_lines(fits, tolerance)
    lines += _locked_lines(locked)
    lines += _design_lines(design)
    lines += _per_joint_lines(per_joint)
    lines += _figure_lines(figures)
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def _warning_lines(warnings: Sequence[str]) -> list[str]:
    if not warnings:
        return []
    return ["## Warnings", "", *[f"- **{w}**" for w in warnings], ""]


_SUMMARY_KEYS = (
    ("untuned_mse", "heldout_untuned_mse", "untuned"),
    ("random_search_mse", "heldout_random_search_mse", "random search"),
    ("best_mse", "heldout_mse", "refined"),
)


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = ["| model | training MSE | held-out MSE |", "|---|---|---|"]
    for train_key, held_key, label in _SUMMARY_KEYS:
        lines.append(f"| {label} | {_fmt(summary.get(train_key))} | {_fmt(summary.get(held_key))} |")
    lines += ["", "MSE in rad^2, mean over the scored joints, samples and sequences. Held-out sequences are"]
    lines += [
        "recorded with the training ones but never fitted: a different signal family around another pose.",
        "",
    ]
    lines += ["| quantity | value |", "|---|---|"]
    for key, value in summary.items():
        if key.endswith("_mse"):
            continue
        lines.append(f"| {key} | {_fmt(value) if isinstance(value, float) else value} |")
    return [*lines, ""]


def _parameter_lines(fits: Sequence[ParameterFit], tolerance: dict[str, float]) -> list[str]:
    has_truth = any(f.true_value is not None for f in fits)
    header = (
        "| parameter | group | mode | range | manufacturer | fitted | unit | sensitivity | train rise | "
        "held-out rise | verdict |"
    )
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    if has_truth:
        header += " true | error |"
        sep += "---|---|"
    lines = ["## Parameters", "", header, sep]
    for f in fits:
        verdict = f"**{f.verdict}**" if not f.constrained else f.verdict
        row = (
            f"| {f.name} | {f.group} | {f.mode} ({f.sampling}) | [{_fmt(f.low)}, {_fmt(f.high)}] | "
            f"{_fmt(f.manufacturer)} | {_fmt(f.value)} | {f.unit:.2f} | {_fmt(f.sensitivity)} | "
            f"{_fmt(f.train_rise)} | {_fmt(f.heldout_rise)} | {verdict} |"
        )
        if has_truth:
            err = None if f.true_value is None else f.value - f.true_value
            row += f" {_fmt(f.true_value)} | {_fmt(err)} |"
        lines.append(row)
    unconstrained = [f.name for f in fits if not f.constrained]
    lines += [
        "",
        f"Each parameter is moved by its tolerance ({tolerance['relative']:.0%} of its value; "
        f"{tolerance['offset']:g} rad for offsets) either way while every other free parameter is re-fitted "
        "to the training data; the smaller relative MSE rise of the two moves is given for the training "
        "and the held-out sequences. It is constrained only if both rises exceed the threshold and it is "
        "not at an edge of its range. Sensitivity: the training rise with the others held fixed; a "
        "sensitive parameter with small rises trades off against another.",
        "",
        "Not constrained by the data: " + (", ".join(unconstrained) if unconstrained else "none") + ".",
        "",
    ]
    return lines


def _tradeoff_lines(fits: Sequence[ParameterFit], tolerance: dict[str, float]) -> list[str]:
    by_name = {f.name: f for f in fits}
    lines = []
    for f in fits:
        if f.constrained or not f.tradeoff:
            continue
        partner = by_name[f.tradeoff]
        step = _tolerance_text(f, tolerance)
        text = (
            f"- {f.name} and {f.tradeoff}: moving {f.name} by +{step} is compensated by {f.tradeoff} "
            f"{_change_text(f.tradeoff_change, partner)} (the free parameters together undo "
            f"{f.tradeoff_share:.0%} of its effect); the data determines their combination"
        )
        if f.determined_if_partner_fixed:
            text += f", and {f.name} itself if {f.tradeoff} is fixed (lock or prior in the config)"
        lines.append(text + ".")
    return ["## Trade-offs", "", *lines, ""] if lines else []


def _locked_lines(locked: Sequence[Parameter]) -> list[str]:
    if not locked:
        return []
    lines = ["## Locked parameters (not searched, written into the overlay as they are)", ""]
    lines += [f"- {p.name} ({p.group}): {p.lock:g}" for p in locked]
    return [*lines, ""]


def _design_lines(design: dict[str, Any] | None) -> list[str]:
    if not design:
        return []
    lines = ["## Excitation (how well the motion separates the parameters)", ""]
    lines += ["| motion | log det per parameter | condition number | least-determined direction |"]
    lines += ["|---|---|---|---|"]
    for label, crit in design.items():
        if not isinstance(crit, dict) or "condition_number" not in crit:
            continue
        weakest = ", ".join(f"{k} {v:+.2f}" for k, v in crit.get("weakest_direction", {}).items())
        lines.append(
            f"| {label} | {crit['log_det_per_parameter']:.2f} | {crit['condition_number']:.3g} | {weakest} |"
        )
    lines += [
        "",
        "From the sensitivity Jacobian J of the tracking residuals to the normalized parameters (J^T J = "
        "Gauss-Newton Hessian of the MSE): log det per parameter (higher: the data tells more parameter "
        "sets apart) and sqrt(max/min eigenvalue) of J^T J (lower: no direction is much worse than the "
        "best).",
        "",
    ]
    return lines


def _per_joint_lines(per_joint: dict[str, list[float]] | None) -> list[str]:
    if not per_joint:
        return []
    lines = ["## Per-joint training MSE", "", "| joint | untuned | tuned |", "|---|---|---|"]
    lines += [f"| {name} | {before:.3g} | {after:.3g} |" for name, (before, after) in per_joint.items()]
    return [*lines, ""]


def _figure_lines(figures: Sequence[Path]) -> list[str]:
    if not figures:
        return []
    lines = ["## Tracking overlays (real vs untuned vs tuned; tracking_*: training, heldout_*: held-out)", ""]
    return lines + [f"![{Path(f).stem}]({Path(f).name})" for f in figures]


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
