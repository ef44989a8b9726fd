"""The distillation dataset: zarr in diffusion_policy's ReplayBuffer layout, validated on write and read.

Layout (zarr format 2, Blosc-zstd chunks, readable by diffusion_policy's ``ReplayBuffer`` and LeRobot's
converters): per-step arrays under ``data/<key>`` concatenated over episodes, ``meta/episode_ends``
(cumulative step counts, the commit marker of an append), and per-episode arrays under
``meta/episode_<key>``. The group attribute ``recipe`` holds the versioned record (what collected it:
specialists and their commits, randomization, objects, counts, success filter, depth image) and
``schema`` the trailing shape and dtype of every array, against which every append and every open is
checked.

Steps written by ``recipe_sim.distill.collect`` (one row per 10 Hz policy step; row t's action was
computed from row t's observation):

* ``state`` (32) float32: ``policy_state(q, object_pos, goal)`` with true values (noise is added in
  training, fresh per sample: the paper's object-position observation noise);
* ``obs_state`` (32) float32: what the specialist saw (Table IV noise, its object-position filter and frame
  lag included);
* ``action`` (26) float32: the specialist's action (robot_spec convention);
* ``depth`` (H, W) uint16 millimetres: the head camera's policy image (``to_policy_image``);
* ``qpos``, ``ctrl``, ``force`` float64: the simulator state and the applied controls, so an episode
  can be replayed (``recipe_sim.distill.replay``) and re-rendered at another resolution.

An append writes the data arrays first and ``meta/episode_ends`` last: a crash in between leaves rows past
the last episode end, which ``open_dataset(mode="a")`` trims and a reader ignores.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "recipe_policy/dataset/v1"
DEPTH_MM_PER_M = 1000.0
CHUNK_STEPS = 256  # rows per zarr chunk of every per-step array


class DatasetError(ValueError):
    """A dataset is malformed; the message names the path, the key and the episode."""


@dataclass(frozen=True)
class Field:
    """Trailing shape and dtype of one array (per step under data/, per episode under meta/)."""

    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Field:
        return cls(tuple(int(x) for x in d["shape"]), str(d["dtype"]))


def _compressor() -> Any:
    import numcodecs

    return numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class ReplayDataset:
    """An open dataset (``create_dataset`` / ``open_dataset``)."""

    def __init__(self, path: Path, group: Any, writable: bool) -> None:
        self.path = path
        self.group = group
        self.writable = writable
        schema = dict(group.attrs.get("schema", {}))
        self.step_fields = {k: Field.from_dict(v) for k, v in schema.get("data", {}).items()}
        self.episode_fields = {k: Field.from_dict(v) for k, v in schema.get("meta", {}).items()}

    # --- record and sizes -------------------------------------------------------------------------------

    @property
    def record(self) -> dict[str, Any]:
        return dict(self.group.attrs.get("recipe", {}))

    def update_record(self, **changes: Any) -> None:
        self._check_writable()
        self.group.attrs["recipe"] = {**self.record, **changes}

    @property
    def episode_ends(self) -> np.ndarray:
        return np.asarray(self.group["meta/episode_ends"][:], dtype=np.int64)

    @property
    def n_episodes(self) -> int:
        return int(self.group["meta/episode_ends"].shape[0])

    @property
    def n_steps(self) -> int:
        ends = self.group["meta/episode_ends"]
        return int(ends[-1]) if ends.shape[0] else 0

    def episode_slice(self, i: int) -> slice:
        ends = self.episode_ends
        if not 0 <= i < len(ends):
            raise IndexError(f"{self.path}: episode {i} out of range (have {len(ends)})")
        return slice(int(ends[i - 1]) if i else 0, int(ends[i]))

    def episode_of_row(self, row: int) -> int:
        return int(np.searchsorted(self.episode_ends, row, side="right"))

    # --- reading ------------------------------------------------------------------------------------------

    def _read(self, key: str, sl: slice, where: str) -> np.ndarray:
        try:
            return np.asarray(self.group[key][sl])
        except Exception as exc:  # numcodecs/zarr raise various errors on corrupt or missing chunks
            raise DatasetError(
                f"{self.path}: {key} {where}: cannot be read ({type(exc).__name__}: {exc})"
            ) from None

    def steps(self, key: str, sl: slice | None = None) -> np.ndarray:
        """Rows of ``data/<key>`` (all committed rows by default)."""
        if key not in self.step_fields:
            raise DatasetError(f"{self.path}: no per-step key {key!r}; have {sorted(self.step_fields)}")
        sl = sl or slice(0, self.n_steps)
        return self._read(f"data/{key}", sl, f"rows {sl.start}..{sl.stop}")

    def episodes(self, key: str) -> np.ndarray:
        if key not in self.episode_fields:
            raise DatasetError(f"{self.path}: no per-episode key {key!r}; have {sorted(self.episode_fields)}")
        return self._read(f"meta/episode_{key}", slice(0, self.n_episodes), "")

    def episode(self, i: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """All (or ``keys``) per-step arrays of episode ``i`` plus its per-episode values (``meta/...``)."""
        sl = self.episode_slice(i)
        out = {k: self._read(f"data/{k}", sl, f"episode {i}") for k in (keys or self.step_fields)}
        for k in self.episode_fields:
            out[f"meta/{k}"] = self._read(f"meta/episode_{k}", slice(i, i + 1), f"episode {i}")[0]
        return out

    # --- validation ---------------------------------------------------------------------------------------

    def _schema_checked(self, name: str, f: Field) -> Any:
        """The array ``name``, present and of the schema's trailing shape and dtype."""
        if name not in self.group:
            raise DatasetError(f"{self.path}: {name} is missing")
        arr = self.group[name]
        if tuple(arr.shape[1:]) != f.shape or str(arr.dtype) != f.dtype:
            raise DatasetError(
                f"{self.path}: {name} is {arr.dtype}{tuple(arr.shape[1:])} per row, the schema says "
                f"{f.dtype}{f.shape}"
            )
        return arr

    def validate(self, values: bool = True, block_rows: int = 8192) -> None:
        """Structure (keys, dtypes, shapes, episode ends, row counts) and, with ``values``, that every float
        entry is finite; raises DatasetError naming key and episode."""
        g, p = self.group, self.path
        if "meta/episode_ends" not in g:
            raise DatasetError(f"{p}: meta/episode_ends is missing (not a replay buffer?)")
        ends = self.episode_ends
        if ends.ndim != 1:
            raise DatasetError(f"{p}: meta/episode_ends must be 1-D, got shape {ends.shape}")
        if len(ends):
            lengths = np.diff(np.concatenate([[0], ends]))
            bad = np.flatnonzero(lengths <= 0)
            if bad.size:
                raise DatasetError(f"{p}: meta/episode_ends is not increasing at episode {int(bad[0])}")
        n, e = self.n_steps, len(ends)
        for key, f in self.step_fields.items():
            name = f"data/{key}"
            arr = self._schema_checked(name, f)
            if arr.shape[0] < n:
                ep = self.episode_of_row(arr.shape[0])
                raise DatasetError(
                    f"{p}: {name} has {arr.shape[0]} rows but meta/episode_ends needs {n}: "
                    f"truncated in episode {ep}"
                )
        for key, f in self.episode_fields.items():
            name = f"meta/episode_{key}"
            arr = self._schema_checked(name, f)
            if arr.shape[0] < e:
                raise DatasetError(
                    f"{p}: {name} has {arr.shape[0]} entries for {e} episodes: truncated "
                    f"at episode {arr.shape[0]}"
                )
        if not values:
            return
        for key in self.step_fields:
            for start in range(0, n, block_rows):
                stop = min(n, start + block_rows)
                block = self._read(
                    f"data/{key}",
                    slice(start, stop),
                    f"episodes {self.episode_of_row(start)}..{self.episode_of_row(stop - 1)}",
                )
                if np.issubdtype(block.dtype, np.floating):
                    rows = np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))
                    if rows.size:
                        ep = self.episode_of_row(start + int(rows[0]))
                        raise DatasetError(
                            f"{p}: data/{key} has NaN/inf in episode {ep} "
                            f"(step {start + int(rows[0]) - (int(ends[ep - 1]) if ep else 0)})"
                        )
        for key in self.episode_fields:
            vals = self.episodes(key)
            if np.issubdtype(vals.dtype, np.floating):
                bad = np.flatnonzero(~np.isfinite(vals.reshape(len(vals), -1)).all(axis=1))
                if bad.size:
                    raise DatasetError(f"{p}: meta/episode_{key} has NaN/inf in episode {int(bad[0])}")

    # --- writing ------------------------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if not self.writable:
            raise DatasetError(f"{self.path}: opened read-only")

    def _check_episode(self, k: int, steps: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> int:
        where = f"{self.path}: episode {self.n_episodes + k} (in this append)"
        missing = sorted(set(self.step_fields) - set(steps))
        extra = sorted(set(steps) - set(self.step_fields))
        if missing or extra:
            raise DatasetError(f"{where}: per-step keys missing {missing}, unknown {extra}")
        lengths = {key: len(v) for key, v in steps.items()}
        t = next(iter(lengths.values()))
        if t < 1 or any(v != t for v in lengths.values()):
            raise DatasetError(f"{where}: per-step arrays must share a length >= 1, got {lengths}")
        for key, f in self.step_fields.items():
            v = np.asarray(steps[key])
            if v.shape[1:] != f.shape:
                raise DatasetError(f"{where}: data/{key} rows are {v.shape[1:]}, expected {f.shape}")
            if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
                raise DatasetError(f"{where}: data/{key} contains NaN/inf")
        missing = sorted(set(self.episode_fields) - set(meta))
        extra = sorted(set(meta) - set(self.episode_fields))
        if missing or extra:
            raise DatasetError(f"{where}: per-episode keys missing {missing}, unknown {extra}")
        for key, f in self.episode_fields.items():
            v = np.asarray(meta[key])
            if v.shape != f.shape:
                raise DatasetError(f"{where}: meta/episode_{key} is {v.shape}, expected {f.shape}")
            if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
                raise DatasetError(f"{where}: meta/episode_{key} contains NaN/inf")
        return t

    def append_episodes(self, episodes: Sequence[tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]) -> None:
        """Append (per-step arrays, per-episode values) pairs; all is checked before anything is written."""
        self._check_writable()
        if not episodes:
            return
        lengths = [self._check_episode(k, s, m) for k, (s, m) in enumerate(episodes)]
        g = self.group
        n0, e0 = self.n_steps, self.n_episodes
        n1, e1 = n0 + sum(lengths), e0 + len(episodes)
        for key, f in self.step_fields.items():
            arr = g[f"data/{key}"]
            arr.resize((n1, *f.shape))
            arr[n0:n1] = np.concatenate([np.asarray(s[key]) for s, _ in episodes]).astype(f.dtype)
        for key, f in self.episode_fields.items():
            arr = g[f"meta/episode_{key}"]
            arr.resize((e1, *f.shape))
            arr[e0:e1] = np.stack([np.asarray(m[key]) for _, m in episodes]).astype(f.dtype)
        ends = g["meta/episode_ends"]
        ends.resize((e1,))
        ends[e0:e1] = n0 + np.cumsum(lengths)  # last: the commit of this append

    def trim_uncommitted(self) -> int:
        """Drop rows past the last episode end (an append that crashed); returns how many were dropped."""
        self._check_writable()
        n, e, dropped = self.n_steps, self.n_episodes, 0
        for key, f in self.step_fields.items():
            arr = self.group[f"data/{key}"]
            if arr.shape[0] > n:
                dropped = max(dropped, arr.shape[0] - n)
                arr.resize((n, *f.shape))
        for key, f in self.episode_fields.items():
            arr = self.group[f"meta/episode_{key}"]
            if arr.shape[0] > e:
                arr.resize((e, *f.shape))
        return dropped


def create_dataset(
    path: str | Path,
    record: Mapping[str, Any],
    step_fields: Mapping[str, Field],
    episode_fields: Mapping[str, Field],
    overwrite: bool = False,
) -> ReplayDataset:
    """A new, empty dataset with the given schema and record (``format`` and ``created`` are added)."""
    import zarr

    path = Path(path)
    if path.exists() and not overwrite:
        raise DatasetError(f"{path}: exists (append to it, or pass overwrite)")
    for key in episode_fields:
        if key == "ends":
            raise DatasetError("per-episode key 'ends' is reserved for meta/episode_ends")
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    data, meta = g.require_group("data"), g.require_group("meta")
    comp = _compressor()
    for key, f in step_fields.items():
        rows = max(
            1, min(CHUNK_STEPS, (1 << 22) // max(1, int(np.prod(f.shape)) * np.dtype(f.dtype).itemsize))
        )
        data.create_array(key, shape=(0, *f.shape), chunks=(rows, *f.shape), dtype=f.dtype, compressors=comp)
    for key, f in episode_fields.items():
        meta.create_array(
            f"episode_{key}", shape=(0, *f.shape), chunks=(1024, *f.shape), dtype=f.dtype, compressors=comp
        )
    meta.create_array("episode_ends", shape=(0,), chunks=(4096,), dtype="int64", compressors=comp)
    g.attrs["schema"] = {
        "data": {k: f.to_dict() for k, f in step_fields.items()},
        "meta": {k: f.to_dict() for k, f in episode_fields.items()},
    }
    g.attrs["recipe"] = {**record, "format": FORMAT, "created": _now()}
    return ReplayDataset(path, g, True)


def open_dataset(
    path: str | Path, mode: str = "r", validate: bool = True, values: bool = False
) -> ReplayDataset:
    """Open and check a dataset (``values``: also scan every float for NaN/inf, which reads everything).

    ``mode="a"`` opens for appending and trims rows of an append that did not commit.
    """
    import zarr

    path = Path(path)
    if mode not in ("r", "a"):
        raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset")
    try:
        g = zarr.open_group(str(path), mode="r" if mode == "r" else "r+")
    except Exception as exc:
        raise DatasetError(f"{path}: not a zarr group ({type(exc).__name__}: {exc})") from None
    rec = dict(g.attrs.get("recipe", {}))
    if rec.get("format") != FORMAT:
        raise DatasetError(f"{path}: record format {rec.get('format')!r} is not {FORMAT!r}")
    if "schema" not in g.attrs:
        raise DatasetError(f"{path}: no schema attribute")
    ds = ReplayDataset(path, g, mode == "a")
    if mode == "a":
        ds.trim_uncommitted()
    if validate:
        ds.validate(values=values)
    return ds
