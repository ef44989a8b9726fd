"""Where the robot description and the project configuration live, and how to read them.

The GR1 URDFs and meshes come from the installed ``fourier_robot_descriptions`` wheel; nothing is
downloaded at run time. Configuration YAML is found by ``recipe_common.paths``.
"""

from __future__ import annotations

import functools
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from recipe_common import robot_spec


def descriptions_root() -> Path:
    """Directory holding ``urdf/`` and ``meshes/`` of the installed fourier_robot_descriptions wheel."""
    try:
        import fourier_robot_descriptions
    except ImportError as exc:  # pragma: no cover - environment problem, not logic
        raise RuntimeError(
            "package 'fourier-robot-descriptions' is not installed; it provides the GR1 URDF and meshes"
        ) from exc
    return Path(fourier_robot_descriptions.__file__).resolve().parent / "assets"


def urdf_path(hand: str = robot_spec.DEFAULT_HAND) -> Path:
    path = descriptions_root() / "urdf" / robot_spec.get_hand(hand).urdf
    if not path.is_file():
        raise FileNotFoundError(f"URDF for hand {hand!r} not found at {path}")
    return path


@functools.lru_cache(maxsize=4)
def mujoco_urdf_text(hand: str = robot_spec.DEFAULT_HAND) -> str:
    """URDF text with the ``<mujoco><compiler .../></mujoco>`` block MuJoCo needs to find the meshes.

    MuJoCo resolves the URDF's relative mesh paths against ``meshdir``; ``discardvisual=false`` keeps the
    visual meshes (used for rendering and for fitting collision capsules).
    """
    path = urdf_path(hand)
    text = path.read_text()
    block = (
        f'<mujoco><compiler meshdir="{path.parent}" strippath="false" discardvisual="false" '
        'balanceinertia="true"/></mujoco>'
    )
    new_text, n = re.subn(r"(<robot\b[^>]*>)", lambda m: m.group(1) + block, text, count=1)
    if n != 1:
        raise ValueError(f"{path} has no <robot> element")
    return new_text


@functools.lru_cache(maxsize=4)
def joint_links(hand: str = robot_spec.DEFAULT_HAND) -> dict[str, tuple[str, str]]:
    """URDF joint name -> (parent link, child link), for every joint of the description."""
    root = ET.parse(urdf_path(hand)).getroot()
    out: dict[str, tuple[str, str]] = {}
    for joint in root.iter("joint"):
        parent, child = joint.find("parent"), joint.find("child")
        if parent is not None and child is not None:
            out[joint.attrib["name"]] = (parent.attrib["link"], child.attrib["link"])
    return out


def joint_child_links(hand: str = robot_spec.DEFAULT_HAND) -> dict[str, str]:
    """URDF joint name -> child link name (the body the joint moves)."""
    return {name: child for name, (_, child) in joint_links(hand).items()}


def moving_link_names(hand: str = robot_spec.DEFAULT_HAND) -> list[str]:
    """Links moved by the arm/hand joints in robot_spec: the bodies whose inertia can be tuned."""
    children = joint_child_links(hand)
    return [children[j] for j in robot_spec.state_joint_names(hand)]


def read_stl(path: str | Path) -> np.ndarray:
    """Vertices (3 per triangle, (3N, 3) float64) of a binary STL file.

    Only binary STL is supported: that is what the descriptions ship; ASCII files raise a clear error.
    """
    data = Path(path).read_bytes()
    if len(data) < 84:
        raise ValueError(f"{path}: too short for a binary STL file")
    (n_tri,) = struct.unpack_from("<I", data, 80)
    if len(data) != 84 + 50 * n_tri:
        raise ValueError(f"{path}: not a binary STL file (size does not match its triangle count)")
    rec = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    tris = np.frombuffer(data, dtype=rec, count=n_tri, offset=84)
    return tris["v"].reshape(-1, 3).astype(np.float64)
