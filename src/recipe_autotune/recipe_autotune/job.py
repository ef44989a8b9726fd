"""One autotune request (action goal or CLI call) resolved against the config, validated before any motion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import AutotuneConfig
from .recording import Recording, RecordingError, load_recording
from .space import SpaceError


@dataclass(frozen=True)
class AutotuneJob:
    groups: tuple[str, ...]  # empty: every group
    population: int
    num_sequences: int
    seed: int
    real_data_path: Path | None  # None: record live through the driver

    @property
    def live(self) -> bool:
        return self.real_data_path is None


def plan_job(
    config: AutotuneConfig,
    groups: Sequence[str] = (),
    population: int = 0,
    num_sequences: int = 0,
    seed: int = 0,
    real_data_path: str | Path | None = "",
) -> AutotuneJob:
    """Apply the goal's 0/empty = "config default" rules and check groups and the data path exist."""
    groups = tuple(g for g in groups if g)
    try:
        config.space.select(groups)
    except SpaceError as exc:
        raise ValueError(str(exc)) from None
    if population < 0 or num_sequences < 0:
        raise ValueError(f"population ({population}) and num_sequences ({num_sequences}) must be >= 0")
    path = Path(real_data_path) if real_data_path else None
    if path is not None and not path.exists():
        raise ValueError(f"real_data_path {path} does not exist")
    return AutotuneJob(
        groups=groups,
        population=int(population) or config.search.population,
        num_sequences=int(num_sequences) or config.calibration.num_sequences,
        seed=int(seed),
        real_data_path=path,
    )


def load_job_recording(job: AutotuneJob, hand: str) -> Recording:
    """The recorded data of a non-live job, cut to the requested number of sequences."""
    if job.real_data_path is None:
        raise ValueError("job is live: there is no recorded data to load")
    rec = load_recording(job.real_data_path, hand=hand)
    if rec.hand != hand:
        raise RecordingError(f"{job.real_data_path}: recorded with the {rec.hand!r} hand, config is {hand!r}")
    if job.num_sequences < rec.num_sequences:
        rec = rec.subset(range(job.num_sequences))
    return rec
