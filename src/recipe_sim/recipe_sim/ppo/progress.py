"""Console progress for training: a tqdm bar on a terminal, periodic plain lines in logs and CI."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from tqdm import tqdm

from recipe_sim.ppo.runner import IterationStats


def format_stats(stats: IterationStats) -> str:
    success = "n/a" if stats.success_rate is None else f"{100 * stats.success_rate:5.1f}%"
    reward = "n/a" if stats.mean_reward is None else f"{stats.mean_reward:8.2f}"
    return (
        f"it {stats.iteration:5d} | success {success} | reward {reward} | "
        f"{stats.steps_per_s:7.0f} steps/s | {stats.env_steps:9d} steps | {stats.wall_time_s / 60:6.1f} min"
    )


class TrainingProgress:
    """Callable per-iteration reporter; use as a context manager so the bar is closed."""

    def __init__(
        self, total: int | None, desc: str = "train", stream: TextIO | None = None, line_every_s: float = 30.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.line_every_s = line_every_s
        self._last_line = -math.inf
        self._count = 0
        self._bar = (
            tqdm(total=total, desc=desc, file=self.stream, dynamic_ncols=True) if self.interactive else None
        )

    def __call__(self, stats: IterationStats) -> None:
        self._count += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(
                f"it={stats.iteration} success={_pct(stats.success_rate)} reward={_num(stats.mean_reward)} "
                f"sps={stats.steps_per_s:.0f}",
                refresh=False,
            )
        elif time.monotonic() - self._last_line >= self.line_every_s or self._count in (1, self.total):
            self._last_line = time.monotonic()
            print(format_stats(stats), file=self.stream, flush=True)

    def write(self, message: str) -> None:
        """A status line (stages before the first iteration) that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
