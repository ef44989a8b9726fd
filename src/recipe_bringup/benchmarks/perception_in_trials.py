"""Perception's object position against the twin's truth in recorded deploy trials: what it cost the deploy.

    ./dev demo --task handover --trials 20 --out runs/demo/handover      # or deploy_bench (its --out)
    ./dev bench perception_in_trials runs/demo/handover

Reads each trial's bag (``/object_state`` and the twin's truth on ``recipe_bringup.stack.TWIN_TRUTH_TOPIC``,
recorded by every trial on the twin with perception in the loop) and prints per trial, from when the policy
began acting: the outcome, the share of messages per status, perception's error against the truth at each
frame's capture time while the object stood on the table and while it was lifted (median, p95, max), and when
it was first more than ``--far-m`` off. Pooled figures for successes and failures follow. Writes
``perception_in_trials.json`` and ``.png`` (error over time per trial, failures in red) next to the run's
summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from recipe_bringup.bag_recorder import read_bag
from recipe_bringup.perception_vs_truth import PHASES, Sample, TrialErrors, compare, error_figures
from recipe_bringup.stack import TWIN_TRUTH_TOPIC
from recipe_common.frames import to_world
from recipe_common.ros.stamps import stamp_s
from recipe_interfaces.msg import PolicyStatus, TrialStatus


def _samples(bag: Path) -> tuple[list[Sample], list[Sample], float | None]:
    """Perception's and the truth's messages, and when the policy began acting in the trial (its first RUNNING
    status after the trial's start; before it perception may still report the previous spawn while it finds
    the new one, which the policy never acts on)."""
    perceived: list[Sample] = []
    truth: list[Sample] = []
    trial_start = None
    running: list[float] = []
    topics = ["/object_state", TWIN_TRUTH_TOPIC, "/trial/status", "/policy/status"]
    for topic, _, msg in read_bag(bag, topics):
        stamp = stamp_s(msg.header.stamp)
        if topic == "/trial/status":
            if trial_start is None and msg.state == TrialStatus.STATE_RUNNING:
                trial_start = stamp - float(msg.elapsed)
            continue
        if topic == "/policy/status":
            if msg.state == PolicyStatus.STATE_RUNNING:
                running.append(stamp)
            continue
        p = np.array([msg.position.x, msg.position.y, msg.position.z], dtype=np.float64)
        if np.all(np.isfinite(p)):
            p = to_world(p, msg.header.frame_id)
        (truth if topic == TWIN_TRUTH_TOPIC else perceived).append(Sample(stamp, p, int(msg.status)))
    if trial_start is None:
        return perceived, truth, None
    acting = [t for t in running if t >= trial_start]
    return perceived, truth, min(acting) if acting else trial_start


def _cm(v: float | None) -> str:
    return "   -" if v is None else f"{100 * v:4.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a demo / deploy_bench output folder (its summary.json)")
    p.add_argument("--far-m", type=float, default=0.05, help="report when perception was first this far off")
    p.add_argument("--lift-m", type=float, default=0.03,
                   help="true height above the start that counts as lifted")
    a = p.parse_args(argv)
    summary_path = a.run / "summary.json"
    if not summary_path.is_file():
        p.error(f"{summary_path}: not found (run ./dev demo ... --out {a.run} first)")
    summary = json.loads(summary_path.read_text())
    rows, by_outcome = [], {}
    print(f"{'trial':>5} {'seed':>5} {'outcome':8} {'track':>5} {'occl':>5} {'lost':>5}   table med/p95   "
          f"lifted med/p95/max (cm)   first >{100 * a.far_m:.0f} cm")
    for r in summary.get("results", []):
        bag = Path(r.get("bag") or "")
        if not bag.is_dir():
            print(f"{r.get('trial', '?'):>5} no bag recorded ({bag})")
            continue
        perceived, truth, start = _samples(bag)
        if len(truth) < 2:
            print(f"{r['trial']:>5} {r['seed']:>5} no twin truth in {bag} "
                  f"(recorded before {TWIN_TRUTH_TOPIC} existed)")
            continue
        err = compare(perceived, truth, start=start, lift_m=a.lift_m)
        s = err.summary(far_m=a.far_m)
        first = s["first_far_s"]
        lost = s["share_lost"] + s["share_initializing"]
        print(f"{r['trial']:>5} {r['seed']:>5} {r['outcome']:8} {100 * s['share_tracking']:4.0f}% "
              f"{100 * s['share_occluded']:4.0f}% {100 * lost:4.0f}%   "
              f"{_cm(s['table_median_m'])} {_cm(s['table_p95_m'])}       "
              f"{_cm(s['lifted_median_m'])} {_cm(s['lifted_p95_m'])} {_cm(s['lifted_max_m'])}          "
              + ("-" if first is None else f"{first:.1f} s"))
        rows.append({"trial": r["trial"], "seed": r["seed"], "outcome": r["outcome"], **s})
        by_outcome.setdefault("success" if r["outcome"] == "success" else "failure", []).append(err)
    pooled = {k: {ph: error_figures([x.error[x.phase_mask(ph)] for x in v]) for ph in PHASES}
              for k, v in by_outcome.items()}
    for k, v in pooled.items():
        print(f"{k:8} ({len(by_outcome[k])} trials): table median {_cm(v['table']['median_m'])} / p95 "
              f"{_cm(v['table']['p95_m'])} cm, lifted median {_cm(v['lifted']['median_m'])} / p95 "
              f"{_cm(v['lifted']['p95_m'])} cm")
    report = {"run": str(a.run), "far_m": a.far_m, "lift_m": a.lift_m, "trials": rows, "pooled": pooled}
    (a.run / "perception_in_trials.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(by_outcome, a.run / "perception_in_trials.png")
    print(f"wrote {a.run / 'perception_in_trials.json'} (+ .png)")
    return 0


def _plot(by_outcome: dict[str, list[TrialErrors]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for outcome, colour in (("success", "tab:green"), ("failure", "tab:red")):
        for k, e in enumerate(by_outcome.get(outcome, [])):
            ax.plot(e.t, 100 * e.error, color=colour, alpha=0.5, lw=1, label=outcome if k == 0 else None)
    ax.set_xlabel("s into the trial")
    ax.set_ylabel("perception error (cm)")
    ax.set_title("perception vs the twin's truth per trial")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
