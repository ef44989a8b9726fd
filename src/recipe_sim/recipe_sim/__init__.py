"""recipe_sim: the GR1 in MuJoCo, tasks, rewards, domain randomization, training and the sim twin."""

import os

# Headless rendering default. MuJoCo reads MUJOCO_GL once, when it is first imported, so it is set
# here, before any submodule imports mujoco; an explicit setting in the environment wins.
os.environ.setdefault("MUJOCO_GL", "egl")
