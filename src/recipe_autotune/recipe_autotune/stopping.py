"""Cancellation shared by every stage: a ``should_stop()`` poll and the exception that unwinds a stage.

Stages poll ``should_stop`` at their natural boundaries (a calibration tick, a rollout call of bounded
size, a search batch) and either return what they have or raise ``Cancelled``; run_autotune turns either
into a cancelled result. Keeping every wait bounded is what lets a cancel, SIGINT or SIGTERM end a run
within about a second whatever the requested budget.
"""

from __future__ import annotations

from collections.abc import Callable

StopFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised inside a stage when ``should_stop()`` turned true; caught by the stage's caller."""


def never() -> bool:
    return False


def check(should_stop: StopFn) -> None:
    """Raise Cancelled when ``should_stop()`` is true (for loops that have nothing partial to return)."""
    if should_stop():
        raise Cancelled
