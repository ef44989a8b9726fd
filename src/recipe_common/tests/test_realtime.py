"""The inference's SCHED_FIFO section: its priority from the environment, raised only while it runs."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from recipe_common.realtime import REALTIME_PRIORITY_ENV, RealtimeSection, realtime_priority


def test_the_priority_is_read_from_the_environment_and_bad_values_name_the_variable():
    assert realtime_priority({}) == 0
    assert realtime_priority({REALTIME_PRIORITY_ENV: ""}) == 0
    assert realtime_priority({REALTIME_PRIORITY_ENV: " 10 "}) == 10
    for bad in ("0", "100", "high", "-5"):
        want = f"{REALTIME_PRIORITY_ENV}='{bad}': expected a SCHED_FIFO priority"
        with pytest.raises(ValueError, match=want):
            realtime_priority({REALTIME_PRIORITY_ENV: bad})
    with pytest.raises(ValueError, match="got 120"):
        RealtimeSection(120)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_FIFO per thread is Linux's")
def test_the_section_raises_only_its_thread_and_only_while_it_runs():
    """In a thread of its own (the test's thread stays as it is): SCHED_FIFO inside the section where the
    machine allows it, the thread's own policy again after it (also after an exception); where it is not
    allowed (no CAP_SYS_NICE, no rtprio limit) the section runs at normal priority, says why once and stops
    trying."""
    seen: dict[str, object] = {}

    def work() -> None:
        section = RealtimeSection(1)
        seen["before"] = os.sched_getscheduler(0)
        with section:
            seen["inside"] = os.sched_getscheduler(0)
        seen["after"] = os.sched_getscheduler(0)
        with pytest.raises(RuntimeError), section:
            raise RuntimeError("a failed inference")
        seen["after_error"] = os.sched_getscheduler(0)
        seen["error"], seen["active"] = section.error, section.active
        with RealtimeSection(0):
            seen["off"] = os.sched_getscheduler(0)

    t = threading.Thread(target=work)
    t.start()
    t.join(10)
    assert seen["before"] == seen["after"] == seen["after_error"] == seen["off"] == os.SCHED_OTHER
    if seen["error"]:
        assert seen["inside"] == os.SCHED_OTHER and not seen["active"]
        assert "cannot run under SCHED_FIFO priority 1" in str(seen["error"])
    else:
        assert seen["inside"] == os.SCHED_FIFO and seen["active"]
