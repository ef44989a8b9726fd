"""Training windows from a distillation dataset: observation history + action chunk per sample.

For an observation row i of an episode [s, e): states/depths of rows i-n+1..i (rows before s repeat row
s, as at the start of a real episode) and actions of rows i-n+1 .. i-n+horizon (rows past e-1 repeat the
last action: the robot holds). That is Diffusion Policy's sampling; the policy returns rows n-1 ..
n-2+action_horizon of the chunk at deployment (the actions from the newest observation on).

Depth frames are converted once, at load, to the profile's policy image with ``to_policy_image`` (the
same function the node and the sim use), and kept in memory as float16 metres.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from recipe_common.observation import policy_layout
from recipe_common.policy_image import PolicyImageSpec, to_policy_image
from recipe_policy.dataset import DEPTH_MM_PER_M, DatasetError, ReplayDataset


def dataset_depth_spec(ds: ReplayDataset) -> PolicyImageSpec:
    d = dict(ds.record["depth"])
    return PolicyImageSpec(
        width=int(d["width"]),
        height=int(d["height"]),
        fovy_deg=float(d["fovy_deg"]),
        near_m=float(d["near_m"]),
        far_m=float(d["far_m"]),
    )


def convert_depth(
    frames_mm: np.ndarray, src: PolicyImageSpec, dst: PolicyImageSpec, progress: bool = False
) -> np.ndarray:
    """(N, h, w) uint16 mm policy images of ``src`` -> (N, H, W) float16 metres of ``dst``."""
    out = np.empty((len(frames_mm), dst.height, dst.width), np.float16)
    k = src.intrinsics()
    same = (src.width, src.height) == (dst.width, dst.height)
    for i in tqdm(
        range(len(frames_mm)), desc="depth", unit="frame", disable=not progress or same, leave=False
    ):
        m = frames_mm[i].astype(np.float32) / DEPTH_MM_PER_M
        out[i] = m if same else to_policy_image(m, k, dst)
    return out


@dataclass
class Batch:
    states: torch.Tensor  # (B, n, D)
    depths: torch.Tensor | None  # (B, n, H, W) metres
    actions: torch.Tensor  # (B, horizon, 26)


class WindowSampler:
    """All windows of some episodes of a dataset, in memory."""

    def __init__(
        self,
        ds: ReplayDataset,
        episodes: Sequence[int],
        n_obs_steps: int,
        horizon: int,
        depth: PolicyImageSpec | None,
        progress: bool = False,
        block: int = 4096,
        state_key: str = "state",
    ) -> None:
        ends = ds.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        self.n_obs_steps, self.horizon = n_obs_steps, horizon
        rows = (
            np.concatenate([np.arange(starts[i], ends[i]) for i in episodes])
            if len(episodes)
            else np.zeros(0, int)
        )
        if rows.size == 0:
            raise DatasetError(f"{ds.path}: no steps in the selected episodes")
        # Compact copies of the selected episodes: new row numbers 0..M-1, episode bounds per row.
        lengths = ends[list(episodes)] - starts[list(episodes)]
        new_ends = np.cumsum(lengths)
        new_starts = new_ends - lengths
        self.ep_start = np.repeat(new_starts, lengths)
        self.ep_last = np.repeat(new_ends - 1, lengths)
        self.states = self._gather(ds, state_key, rows, np.float32, block)
        self.actions = self._gather(ds, "action", rows, np.float32, block)
        self.depths = None
        if depth is not None:
            src = dataset_depth_spec(ds)
            self.depths = self._gather(ds, "depth", rows, np.float16, block,
                                       lambda mm: convert_depth(mm, src, depth))
        self.size = len(rows)

    @staticmethod
    def _gather(ds: ReplayDataset, key: str, rows: np.ndarray, dtype: type, block: int,
                convert: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Rows of data/<key> read (and converted) in contiguous blocks; the selection is a union of episode
        ranges. Converting per block keeps the full-size frames out of memory."""
        out = []
        lo = int(rows.min())
        hi = int(rows.max()) + 1
        keep = np.zeros(hi - lo, bool)
        keep[rows - lo] = True
        for a in range(lo, hi, block):
            b = min(hi, a + block)
            m = keep[a - lo : b - lo]
            if m.any():
                rows_ab = ds.steps(key, slice(a, b))[m]
                out.append((convert(rows_ab) if convert is not None else rows_ab).astype(dtype))
        return np.concatenate(out)

    def windows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, n) observation rows and (B, horizon) action rows for window ends ``idx``."""
        n, h = self.n_obs_steps, self.horizon
        obs = idx[:, None] + np.arange(-(n - 1), 1)[None]
        obs = np.maximum(obs, self.ep_start[idx][:, None])
        act = idx[:, None] - (n - 1) + np.arange(h)[None]
        act = np.clip(act, self.ep_start[idx][:, None], self.ep_last[idx][:, None])
        return obs, act

    def batch(self, idx: np.ndarray) -> Batch:
        obs, act = self.windows(idx)
        depths = None if self.depths is None else torch.from_numpy(self.depths[obs].astype(np.float32))
        return Batch(torch.from_numpy(self.states[obs]), depths, torch.from_numpy(self.actions[act]))


def state_slices(has_goal: bool) -> dict[str, slice]:
    out, start = {}, 0
    for name, n in policy_layout(has_goal):
        out[name] = slice(start, start + n)
        start += n
    return out
