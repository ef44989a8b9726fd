"""The MuJoCo twin as a robot: the GR1 driver on its sim backend plus the trial service, in one process.

    ros2 run recipe_bringup twin --ros-args --params-file config/driver.yaml --params-file config/trials.yaml

The trial service reads the twin's ground truth and places the object, so it must share the driver's
process (``recipe_bringup.stack`` declares it that way for launch files and the pip runner alike).
"""

from __future__ import annotations

import sys
from typing import Any

from rclpy.parameter import Parameter

from recipe_bringup.trial_node import TrialNode
from recipe_common.ros.process import run_nodes
from recipe_gr1_driver.node import DriverNode


def to_parameters(values: dict[str, Any] | None) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in (values or {}).items()]


def compose(overrides: dict[str, dict[str, Any]] | None = None) -> list[Any]:
    """[driver (backend sim), trials]; ``overrides`` maps node name -> parameter values."""
    overrides = overrides or {}
    params = dict(overrides.get("gr1_driver", {}))
    params.setdefault("backend", "sim")
    driver = DriverNode(parameter_overrides=to_parameters(params))
    if driver.backend.name != "sim":
        driver.shutdown()
        driver.destroy_node()
        raise ValueError("the twin needs the driver's sim backend (backend: sim)")
    try:
        trials = TrialNode(twin=lambda: driver.backend.twin,
                           parameter_overrides=to_parameters(overrides.get("trials")))
    except Exception:
        driver.shutdown()
        driver.destroy_node()
        raise
    return [driver, trials]


def main(args: list[str] | None = None) -> int:
    return run_nodes(compose, args, name="twin")


if __name__ == "__main__":
    sys.exit(main())
