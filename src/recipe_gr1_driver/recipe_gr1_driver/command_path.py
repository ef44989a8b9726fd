"""The driver's command path as a plain object: what the robot's joints get from a policy's targets.

Between a policy and the motors the driver validates each command, ramps a new command source in from the
pose the robot holds, caps every joint's step and velocity and keeps a margin from the joint limits
(``controller.SafetyController`` over ``safety.SafetyFilter``, with the limits of config/driver.yaml). A
simulator that evaluates a policy "as deployed" puts the same object between the policy and its actuators
(``recipe_sim.vec_env.RecipeVecEnv.set_command_path``): built here from the same configuration with the same
function the driver node uses, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from recipe_common import robot_spec
from recipe_common.paths import config_path
from recipe_gr1_driver.config import DriverConfig, load_driver_config
from recipe_gr1_driver.controller import SafetyController
from recipe_gr1_driver.safety import SafetyFilter, SafetyLimits

SOURCE = "policy"


def build_controller(cfg: DriverConfig) -> SafetyController:
    """The driver's safety controller for a configuration (the driver node builds its own with this)."""
    limits = SafetyLimits.from_spec(cfg.hand, cfg.arm_margin, cfg.hand_margin, cfg.arm_velocity_scale,
                                    cfg.arm_max_velocity, cfg.hand_max_velocity, cfg.max_step)
    safety = SafetyFilter(limits, passive_names=robot_spec.hand_coupled_joint_names(cfg.hand))
    return SafetyController(safety, cfg.watchdog_timeout, cfg.ramp_time)


class DriverCommandPath:
    """One robot's command path: ``reset`` to the pose it holds, ``submit`` targets, ``update`` each tick."""

    def __init__(self, cfg: DriverConfig) -> None:
        self.controller = build_controller(cfg)
        self.names = robot_spec.actuated_joint_names()

    def reset(self, q: np.ndarray) -> np.ndarray:
        return self.controller.reset(np.asarray(q, dtype=np.float64))

    def submit(self, q: np.ndarray, t: float) -> None:
        self.controller.submit(self.names, np.asarray(q, dtype=np.float64), SOURCE, t)

    def update(self, t: float) -> np.ndarray:
        return self.controller.update(t)


def driver_command_paths(path: str | Path | None = None) -> Callable[[], DriverCommandPath]:
    """A factory of command paths with config/driver.yaml's (or ``path``'s) limits, ramp and watchdog."""
    cfg = load_driver_config(path if path is not None else config_path("driver.yaml"))
    return lambda: DriverCommandPath(cfg)
