"""One autotune request (action goal or CLI call) resolved against the config, validated before any motion.

Every field is checked up front against bounds from config/autotune.yaml, so a goal that cannot run (or
would run for days, or allocate more memory than the machine has) is rejected with a message naming the
field and its allowed range, instead of being accepted and failing later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import AutotuneConfig, ConfigError
from .recording import Recording, RecordingError, load_recording

SEED_MAX = 2**32 - 1  # calibration.generate_sequences seeds numpy with (seed & 0xFFFFFFFF, k)

# How each request field is called by the action goal (the default) and by the CLI.
GOAL_FIELDS = {
    "groups": "parameter_groups",
    "population": "population_size",
    "num_sequences": "num_sequences",
    "seed": "seed",
    "real_data_path": "real_data_path",
}
CLI_FIELDS = {
    "groups": "--groups",
    "population": "--population",
    "num_sequences": "--num-sequences",
    "seed": "--seed",
    "real_data_path": "--real",
}


class JobError(ValueError):
    """A request field is out of range or names something that does not exist; the message names it."""


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


def _bounded(value: int, name: str, low: int, high: int, note: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise JobError(f"{name}: {value!r} is outside the allowed range [{low}, {high}] ({note})")
    return int(value)


def plan_job(
    config: AutotuneConfig,
    groups: Sequence[str] = (),
    population: int = 0,
    num_sequences: int = 0,
    seed: int = 0,
    real_data_path: str | Path | None = "",
    fields: Mapping[str, str] = GOAL_FIELDS,
) -> AutotuneJob:
    """Apply the "0/empty = config default" rules and check every field; raises JobError naming it.

    ``fields`` maps the request fields to the names the caller's user knows them by (goal field names
    by default, CLI flags for the CLI).
    """
    groups = tuple(g for g in groups if g)
    try:
        config.space.select(groups)
    except ConfigError as exc:
        raise JobError(f"{fields['groups']}: {exc}") from None
    max_pop, max_seq = config.search.max_population, config.calibration.max_sequences
    population = _bounded(
        population,
        fields["population"],
        0,
        max_pop,
        f"0: the config's {config.search.population}; the bound is search.max_population in the config",
    )
    num_sequences = _bounded(
        num_sequences,
        fields["num_sequences"],
        0,
        max_seq,
        f"0: the config's {config.calibration.num_sequences}; the bound is calibration.max_sequences",
    )
    seed = _bounded(seed, fields["seed"], 0, SEED_MAX, "it seeds the calibration motion and the candidates")
    path = Path(real_data_path) if real_data_path else None
    if path is not None and not path.exists():
        raise JobError(f"{fields['real_data_path']}: {path} does not exist")
    return AutotuneJob(
        groups=groups,
        population=population or config.search.population,
        num_sequences=num_sequences or config.calibration.num_sequences,
        seed=seed,
        real_data_path=path,
    )


def load_job_recording(job: AutotuneJob, hand: str, default_heldout: int = 1) -> Recording:
    """The recorded data of a non-live job: its first ``num_sequences`` training sequences and every
    held-out one (see Recording.split for recordings that do not mark them)."""
    if job.real_data_path is None:
        raise ValueError("job is live: there is no recorded data to load")
    rec = load_recording(job.real_data_path, hand=hand)
    if rec.hand != hand:
        raise RecordingError(f"{job.real_data_path}: recorded with the {rec.hand!r} hand, config is {hand!r}")
    train, held = rec.split(default_heldout)
    if job.num_sequences < len(train):
        rec = rec.subset(train[: job.num_sequences] + held)
        if not rec.heldout and held:  # unmarked: keep the split the full recording had
            rec = Recording(
                rec.targets,
                rec.measured,
                rec.times,
                rec.hand,
                tuple(range(job.num_sequences, rec.num_sequences)),
            )
    return rec
