from types import SimpleNamespace

import pytest

from recipe_common.ros.stamps import stamp_ns, stamp_s


def test_a_stamp_converts_to_seconds_and_exact_nanoseconds():
    stamp = SimpleNamespace(sec=1_764_800_000, nanosec=123_456_789)
    assert stamp_ns(stamp) == 1_764_800_000_123_456_789
    assert stamp_s(stamp) == pytest.approx(1_764_800_000.123456789, abs=1e-6)


def test_the_zero_stamp_is_zero():
    zero = SimpleNamespace(sec=0, nanosec=0)
    assert stamp_ns(zero) == 0 and stamp_s(zero) == 0.0
