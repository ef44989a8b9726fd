"""``dataset_summary``: what a distillation dataset holds (episodes per object and source, lengths, action
ranges, depth statistics) as JSON, and a PNG of sample depth frames; validates it on the way (``--values``
scans every float for NaN/inf).

Example::

    ./dev run dataset_summary runs/distill/grasp_reach.zarr --png runs/distill/grasp_reach_depth.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec
from recipe_policy.dataset import DEPTH_MM_PER_M, DatasetError, ReplayDataset, open_dataset


def summarize(ds: ReplayDataset) -> dict[str, Any]:
    rec = ds.record
    ends = ds.episode_ends
    lengths = np.diff(np.concatenate([[0], ends]))
    objects = list(rec.get("objects", []))
    sources = list(rec.get("sources", []))
    obj_ids = ds.episodes("object") if "object" in ds.episode_fields else np.zeros(len(ends), int)
    src_ids = ds.episodes("source") if "source" in ds.episode_fields else np.zeros(len(ends), int)
    per_object = {}
    for k, name in enumerate(objects):
        sel = obj_ids == k
        per_object[name] = {"episodes": int(sel.sum()), "steps": int(lengths[sel].sum())}
    per_source = {}
    for k, src in enumerate(sources):
        sel = src_ids == k
        per_source[src.get("name", str(k))] = {"episodes": int(sel.sum()), "steps": int(lengths[sel].sum())}
    actions = ds.steps("action")
    names = robot_spec.actuated_joint_names()
    if actions.ndim != 2 or actions.shape[1] != len(names):
        names = [f"action[{i}]" for i in range(actions.shape[1] if actions.ndim == 2 else 0)]
    out: dict[str, Any] = {
        "path": str(ds.path),
        "format": rec.get("format"),
        "task": rec.get("task"),
        "episodes": len(ends),
        "steps": int(ds.n_steps),
        "episode_length": {
            "min": int(lengths.min()),
            "mean": float(lengths.mean()),
            "max": int(lengths.max()),
        }
        if len(lengths)
        else None,
        "per_object": per_object,
        "per_source": per_source,
        "action_range": {
            n: [float(actions[:, i].min()), float(actions[:, i].max())] for i, n in enumerate(names)
        }
        if len(actions)
        else {},
        "success_filter": rec.get("success_filter"),
        "last_collect": rec.get("last_collect"),
    }
    if "depth" in ds.step_fields and ds.n_steps:
        sample = ds.steps("depth", slice(0, min(ds.n_steps, 2000))).astype(np.float32) / DEPTH_MM_PER_M
        out["depth_m"] = {
            "min": float(sample.min()),
            "median": float(np.median(sample)),
            "max": float(sample.max()),
            "image": list(sample.shape[1:]),
        }
    return out


def plot_depth(ds: ReplayDataset, path: Path, episodes: int = 6, frames: int = 5, seed: int = 0) -> Path:
    """A grid of depth frames: rows are random episodes, columns evenly spaced steps of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(ds.n_episodes, size=min(episodes, ds.n_episodes), replace=False))
    objects = ds.record.get("objects", [])
    fig, axes = plt.subplots(len(pick), frames, figsize=(2.0 * frames, 2.0 * len(pick)), squeeze=False)
    for r, e in enumerate(pick):
        sl = ds.episode_slice(int(e))
        d = ds.steps("depth", sl).astype(np.float32) / DEPTH_MM_PER_M
        oid = int(ds.episodes("object")[e]) if "object" in ds.episode_fields else 0
        for c, t in enumerate(np.linspace(0, len(d) - 1, frames).astype(int)):
            ax = axes[r, c]
            ax.imshow(d[t], cmap="viridis", vmin=0.2, vmax=1.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(
                f"ep {e} t={t}" + (f" {objects[oid]}" if c == 0 and oid < len(objects) else ""), fontsize=7
            )
    fig.suptitle(f"{ds.path.name}: head depth policy images (m)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dataset_summary", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("--png", type=Path, default=None, help="write sample depth frames here")
    p.add_argument("--json", type=Path, default=None, help="write the summary here (default: print it)")
    p.add_argument(
        "--values", action="store_true", help="also check every value for NaN/inf (reads everything)"
    )
    a = p.parse_args(argv)
    try:
        ds = open_dataset(a.dataset, values=a.values)
        summary = summarize(ds)
        if a.png is not None:
            plot_depth(ds, a.png)
    except DatasetError as exc:
        print(f"dataset_summary: error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(summary, indent=1)
    if a.json is not None:
        a.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
