"""GR1 MuJoCo model: building from the URDF, tunable parameters, fitted collision shapes, scene config."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering default; read when mujoco is first imported


from recipe_sim.model.builder import ModelIndex, apply_params, build_model, build_spec
from recipe_sim.model.params import ModelParams, ParamsError

__all__ = ["ModelIndex", "ModelParams", "ParamsError", "apply_params", "build_model", "build_spec"]
