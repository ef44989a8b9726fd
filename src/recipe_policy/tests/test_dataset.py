"""The zarr replay dataset: round trip, append, and clear errors for bad, corrupt or truncated data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recipe_policy.dataset import DatasetError, Field, create_dataset, open_dataset
from recipe_policy.dataset_summary import main as summary_main
from recipe_policy.training_data import WindowSampler

STEPS = {
    "state": Field((4,), "float32"),
    "obs_state": Field((4,), "float32"),
    "action": Field((3,), "float32"),
    "depth": Field((6, 5), "uint16"),
}
EPISODE = {"object": Field((), "int64"), "draw": Field((2,), "float64")}
RECORD = {
    "task": "grasp_reach",
    "hand": "fourier",
    "has_goal": False,
    "objects": ["a", "b"],
    "sources": [],
    "depth": {"width": 5, "height": 6, "fovy_deg": 60.0, "near_m": 0.1, "far_m": 2.0},
}


def episode(t: int, k: int) -> tuple[dict, dict]:
    steps = {
        "state": np.full((t, 4), k, np.float32) + np.arange(t)[:, None],
        "obs_state": np.full((t, 4), k + 0.5, np.float32) + np.arange(t)[:, None],
        "action": np.full((t, 3), 10 * k, np.float32) + np.arange(t)[:, None],
        "depth": np.full((t, 6, 5), 500 + k, np.uint16),
    }
    return steps, {"object": np.int64(k % 2), "draw": np.array([k, -k], float)}


def make(path: Path, lengths=(5, 3, 7)) -> None:
    ds = create_dataset(path, RECORD, STEPS, EPISODE)
    ds.append_episodes([episode(t, k) for k, t in enumerate(lengths[:2])])
    ds.append_episodes([episode(t, k + 2) for k, t in enumerate(lengths[2:])])


def test_round_trip_and_replay_buffer_layout(tmp_path: Path):
    path = tmp_path / "d.zarr"
    make(path)
    ds = open_dataset(path, values=True)
    assert ds.n_episodes == 3 and ds.n_steps == 15
    np.testing.assert_array_equal(ds.episode_ends, [5, 8, 15])
    ep = ds.episode(1)
    np.testing.assert_array_equal(ep["state"], episode(3, 1)[0]["state"])
    np.testing.assert_array_equal(ep["meta/draw"], [1.0, -1.0])
    assert ds.record["task"] == "grasp_reach" and ds.record["format"] == "recipe_policy/dataset/v1"
    # diffusion_policy's ReplayBuffer layout on disk: data/<key>, meta/episode_ends, zarr v2 arrays.
    assert (path / "data" / "action" / ".zarray").is_file() and (
        path / "meta" / "episode_ends" / ".zarray"
    ).is_file()
    assert json.loads((path / "data" / "depth" / ".zarray").read_text())["compressor"]["cname"] == "zstd"
    with pytest.raises(DatasetError, match="read-only"):
        ds.append_episodes([episode(2, 9)])
    ds_a = open_dataset(path, mode="a")
    ds_a.append_episodes([episode(2, 9)])
    assert open_dataset(path).n_steps == 17


def test_bad_appends_are_refused_before_anything_is_written(tmp_path: Path):
    path = tmp_path / "d.zarr"
    make(path)
    ds = open_dataset(path, mode="a")
    steps, meta = episode(4, 5)
    steps["action"][2, 1] = np.nan
    with pytest.raises(DatasetError, match=r"episode 4 .*data/action contains NaN"):
        ds.append_episodes([episode(2, 4), (steps, meta)])
    bad = episode(4, 5)
    bad[0]["state"] = bad[0]["state"][:, :3]
    with pytest.raises(DatasetError, match=r"data/state rows are \(3,\), expected \(4,\)"):
        ds.append_episodes([bad])
    missing = episode(4, 5)
    del missing[1]["draw"]
    with pytest.raises(DatasetError, match="missing \\['draw'\\]"):
        ds.append_episodes([missing])
    assert open_dataset(path, values=True).n_steps == 15  # nothing was written


def test_corruption_and_truncation_name_the_key_and_episode(tmp_path: Path):
    src = tmp_path / "d.zarr"
    make(src)
    # A NaN that reached the disk (written around the checks): named by key and episode.
    nan = tmp_path / "nan.zarr"
    shutil.copytree(src, nan)
    import zarr

    zarr.open_group(str(nan), mode="r+")["data/state"][9] = np.nan  # row 9 = episode 2, step 1
    open_dataset(nan)  # structure is fine
    with pytest.raises(DatasetError, match=r"data/state has NaN/inf in episode 2 \(step 1\)"):
        open_dataset(nan, values=True)
    # Truncated: a per-step array shorter than episode_ends says.
    cut = tmp_path / "cut.zarr"
    shutil.copytree(src, cut)
    zarr.open_group(str(cut), mode="r+")["data/action"].resize((10, 3))
    with pytest.raises(
        DatasetError,
        match=r"data/action has 10 rows but meta/episode_ends needs 15: truncated in "
        r"episode 2",
    ):
        open_dataset(cut)
    # A corrupt chunk file: the read fails with the key named.
    bad = tmp_path / "bad.zarr"
    shutil.copytree(src, bad)
    (bad / "data" / "depth" / "0.0.0").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"data/depth .*cannot be read"):
        open_dataset(bad, values=True)
    # A missing array and a non-dataset.
    gone = tmp_path / "gone.zarr"
    shutil.copytree(src, gone)
    shutil.rmtree(gone / "data" / "depth")
    with pytest.raises(DatasetError, match="data/depth is missing"):
        open_dataset(gone)
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "nothing.zarr")
    # An append that died before committing episode_ends: readers ignore the rows, append mode trims them.
    torn = tmp_path / "torn.zarr"
    shutil.copytree(src, torn)
    zarr.open_group(str(torn), mode="r+")["data/state"].resize((20, 4))
    assert open_dataset(torn).n_steps == 15
    assert open_dataset(torn, mode="a").group["data/state"].shape[0] == 15


def test_windows_pad_at_episode_edges(tmp_path: Path):
    path = tmp_path / "d.zarr"
    make(path)
    ds = open_dataset(path)
    s = WindowSampler(ds, [0, 2], n_obs_steps=2, horizon=4, depth=None)
    assert s.size == 12
    obs, act = s.windows(np.array([0, 4, 5]))
    assert obs.tolist() == [[0, 0], [3, 4], [5, 5]]  # episode starts repeat the first row
    assert act.tolist() == [[0, 0, 1, 2], [3, 4, 4, 4], [5, 5, 6, 7]]  # episode ends repeat the last action
    b = s.batch(np.array([4]))
    np.testing.assert_array_equal(b.actions[0, :, 0].numpy(), [3, 4, 4, 4])  # episode 0: action = row index
    np.testing.assert_array_equal(b.states[0, :, 0].numpy(), [3, 4])
    # The state input can be what the specialist observed instead (profile training.state_key).
    seen = WindowSampler(ds, [0, 2], n_obs_steps=2, horizon=4, depth=None, state_key="obs_state")
    np.testing.assert_array_equal(seen.batch(np.array([4])).states[0, :, 0].numpy(), [3.5, 4.5])


def test_summary_command_writes_json_and_png(tmp_path: Path, capsys):
    path = tmp_path / "d.zarr"
    make(path)
    assert (
        summary_main(
            [str(path), "--png", str(tmp_path / "d.png"), "--json", str(tmp_path / "s.json"), "--values"]
        )
        == 0
    )
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["episodes"] == 3 and s["per_object"] == {
        "a": {"episodes": 2, "steps": 12},
        "b": {"episodes": 1, "steps": 3},
    }
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    assert summary_main([str(tmp_path / "none.zarr")]) == 1
