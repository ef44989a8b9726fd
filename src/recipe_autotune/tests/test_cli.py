"""The ``autotune`` CLI: simulated real robot, recorded data, and clear errors (exit code 2)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from recipe_autotune.cli import main
from recipe_autotune.config import default_config_path
from recipe_autotune.recording import Recording


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    raw = copy.deepcopy(yaml.safe_load(default_config_path().read_text()))
    raw["calibration"].update(duration_s=4.0, num_sequences=2, ramp_s=1.0, settle_s=0.5)
    raw["search"].update(population=6, refinement_evaluations=6, batch_size=6)
    path = tmp_path_factory.mktemp("cli") / "autotune.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_hidden_overlay_then_recorded_data(small_config, tmp_path, capsys):
    rec_path = tmp_path / "rec.npz"
    common = ["--config", str(small_config), "--groups", "hand_coupling"]
    code = main(
        [
            *common,
            "--hidden-overlay",
            "default",
            "--noise",
            "0.0005",
            "--out",
            str(tmp_path / "a"),
            "--save-recording",
            str(rec_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "untuned" in out and (tmp_path / "a" / "autotune_overlay.yaml").is_file()
    rec = Recording.load(rec_path)
    train, held = rec.split()
    assert len(train) == 2 and len(held) == 1 and rec.num_samples == 40  # held-out recorded alongside
    # coupling k x1.08 is in the hidden overlay: the recorded intermediate joints follow it, not 0.975
    names = rec.joint_names
    a, u = names.index("L_index_proximal_joint"), names.index("L_index_intermediate_joint")
    moving = np.abs(rec.measured[:, :, a]) > 0.3
    ratio = rec.measured[:, :, u][moving] / rec.measured[:, :, a][moving]
    assert np.median(ratio) == pytest.approx(0.975 * 1.08, abs=0.01)

    code = main(
        [*common, "--real", str(rec_path), "--num-sequences", "1", "--no-plots", "--out", str(tmp_path / "b")]
    )
    assert code == 0
    assert (tmp_path / "b" / "report.md").is_file()
    assert not list((tmp_path / "b").glob("*.png"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--real", "/nonexistent/rec.npz"], "does not exist"),
        (["--hidden-overlay", "default", "--groups", "nope"], "unknown parameter group"),
    ],
)
def test_cli_errors_exit_2_with_the_reason(small_config, args, message, capsys):
    assert main(["--config", str(small_config), *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_bad_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: recipe_autotune/config/v1\nsearch: {population: -1}\ngroups: {}\n")
    assert main(["--config", str(bad), "--hidden-overlay", "default"]) == 2
    assert "search.population" in capsys.readouterr().err
