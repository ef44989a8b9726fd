"""ROS time stamps as numbers: the one conversion every node, bag reader and benchmark uses.

A ``builtin_interfaces/Time`` is two integers (sec, nanosec). Nodes compare stamps as float seconds and
bag tools as integer nanoseconds; both conversions live here so they cannot drift apart (e.g. one place
adding nanosec * 1e-6 by mistake). Duck-typed on ``.sec`` / ``.nanosec``, so it takes rclpy messages and
the messages ``rosbags`` deserializes alike, and needs no rclpy.
"""

from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    """Integer nanoseconds of a ``Time`` (exact; what bag log times are written in)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_s(stamp: Any) -> float:
    """Float seconds of a ``Time`` (what node clocks and latency figures use)."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)
