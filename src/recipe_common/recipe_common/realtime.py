"""A latency-critical section of a thread under SCHED_FIFO: the policy node's inference.

Why: the inference is the one latency-bound job of the workstation, and a nice value only weighs its share
of a contended core. On the twin's 2 cores at nice -5 the grasp_reach generalist's inference took 22 ms of
wall time for 16 ms of CPU (it shares CPU 1 with perception) and observation-to-command p99 was 50-64 ms;
with the inference under SCHED_FIFO, 16.5 ms and p99 38 ms (docs/deploy.md). As realtime_tools does for
ros2_control's loop, only the section that must not wait is raised, and only while it runs: a whole
process under SCHED_FIFO (tried first; p99 27-35 ms) let one of its threads that kept running starve the
others of the same priority on its CPU, and a stop needed SIGKILL. The priority comes from the process's
environment (``REALTIME_PRIORITY_ENV``, which the stack declaration sets for the policy process), so
composed nodes and tests run at normal priority unless asked. Needs CAP_SYS_NICE or an ``rtprio`` limit
(/etc/security/limits.conf, docker ``--cap-add SYS_NICE``); without it the section runs at the thread's
normal priority and ``error`` says why.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import TracebackType

REALTIME_PRIORITY_ENV = "RECIPE_REALTIME_PRIORITY"


def realtime_priority(env: Mapping[str, str] | None = None) -> int:
    """The SCHED_FIFO priority ``REALTIME_PRIORITY_ENV`` asks for (1-99), 0 when unset or empty."""
    raw = (os.environ if env is None else env).get(REALTIME_PRIORITY_ENV, "").strip()
    if not raw:
        return 0
    try:
        priority = int(raw)
    except ValueError:
        priority = -1
    if not 1 <= priority <= 99:
        raise ValueError(f"{REALTIME_PRIORITY_ENV}={raw!r}: expected a SCHED_FIFO priority 1-99 (or unset)")
    return priority


class RealtimeSection:
    """``with section:`` runs the calling thread under SCHED_FIFO ``priority``, then restores its policy.

    Priority 0 is a no-op. The first refusal (no permission, no SCHED_FIFO on the platform) is kept in
    ``error`` and the section is not tried again.
    """

    def __init__(self, priority: int) -> None:
        if not 0 <= priority <= 99:
            raise ValueError(f"SCHED_FIFO priority must be 0 (off) or 1-99, got {priority}")
        self.priority = priority
        self.error = "" if hasattr(os, "sched_setscheduler") else f"no SCHED_FIFO on {sys.platform}"
        self._saved: tuple[int, os.sched_param] | None = None

    @property
    def active(self) -> bool:
        """True when sections raise the thread (a priority is set and was not refused)."""
        return bool(self.priority) and not self.error

    def __enter__(self) -> RealtimeSection:
        self._saved = None
        if self.active:
            saved = (os.sched_getscheduler(0), os.sched_getparam(0))
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
            except PermissionError:
                self.error = (f"cannot run under SCHED_FIFO priority {self.priority} (needs CAP_SYS_NICE "
                              "or an rtprio limit)")
            else:
                self._saved = saved
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._saved is not None:
            os.sched_setscheduler(0, *self._saved)
            self._saved = None
