"""Where the workspace's configuration lives, for source checkouts and installed packages alike.

Order: ``$RECIPE_CONFIG_DIR``; the ``config/`` folder of the source checkout this module sits in
(colcon --symlink-install and plain source use); the ``config/`` that recipe_bringup installs into its
ament share directory (a full ROS install or the docker image).
"""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    env = os.environ.get("RECIPE_CONFIG_DIR")
    if env:
        p = Path(env)
        if not p.is_dir():
            raise FileNotFoundError(f"RECIPE_CONFIG_DIR={env} is not a directory")
        return p
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "config"
        if (cand / "objects.yaml").is_file() or (cand / "robot.yaml").is_file():
            return cand
    try:
        from ament_index_python.packages import get_package_share_directory

        cand = Path(get_package_share_directory("recipe_bringup")) / "config"
        if cand.is_dir():
            return cand
    except Exception:
        pass
    raise FileNotFoundError(
        "cannot find the recipe config/ directory: set RECIPE_CONFIG_DIR or run from the workspace"
    )


def config_path(name: str) -> Path:
    """Path of a config file by name (e.g. ``"objects.yaml"``); a clear error when it is missing."""
    p = config_dir() / name
    if not p.is_file():
        raise FileNotFoundError(f"config file {name!r} not found in {p.parent}")
    return p


def workspace_dir() -> Path:
    """The workspace root (parent of config/), where runs/, log/ and outputs go by default."""
    return config_dir().parent
