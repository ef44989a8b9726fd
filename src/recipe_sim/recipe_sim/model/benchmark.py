"""Measure model build time, physics speed with fingers in contact, and head-depth rendering speed.

Run ``python -m recipe_sim.model.benchmark``; numbers go to stdout. Not a test: timings depend on the
machine and its load.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import argparse
import time

import mujoco
import numpy as np

from recipe_common import robot_spec
from recipe_sim.model.builder import build_model
from recipe_sim.objects import ObjectSpec, load_catalog

# A 0.1 kg cylinder held across the fingers of the hanging left hand (see test_model.py).
_PROBE = ObjectSpec("probe", "cylinder", (0.025, 0.05), mass_range=(0.1, 0.1), friction_range=(0.5, 0.5))
_HOLD = np.array([0.02, 0.175, 0.72, np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0])


def build_times(hand: str, repeats: int = 3) -> dict[str, float]:
    out = {}
    for visual in (False, True):
        start = time.perf_counter()
        build_model(hand, obj=load_catalog().objects["can_small"], visual=visual)
        first = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            build_model(hand, obj=load_catalog().objects["can_small"], visual=visual)
            times.append(time.perf_counter() - start)
        out[f"visual={visual} first_s"] = first
        out[f"visual={visual} median_s"] = float(np.median(times))
    return out


def contact_steps_per_second(hand: str, steps: int = 2400) -> tuple[float, float]:
    """(steps/s, mean contact count) with the hand closed on a held object."""
    model, index = build_model(hand, obj=_PROBE)
    data = mujoco.MjData(model)
    a, dof = index.object_qpos_adr, index.object_dof_adr
    closed = robot_spec.hand_normalized_to_rad(np.array([0.6, 1, 1, 1, 1, 1]), hand)
    for k in range(120):
        data.ctrl[index.actuator_ids[14:20]] = min(1.0, k / 60) * closed
        mujoco.mj_step(model, data)
        data.qpos[a:a + 7], data.qvel[dof:dof + 6] = _HOLD, 0.0
    mujoco.mj_step(model, data, nstep=120)
    contacts = []
    start = time.perf_counter()
    for _ in range(steps // 240):
        mujoco.mj_step(model, data, nstep=240)
        contacts.append(data.ncon)
    return (steps // 240 * 240) / (time.perf_counter() - start), float(np.mean(contacts))


def depth_fps(frames: int = 200, width: int = 84, height: int = 84, visual: bool = False) -> float:
    from recipe_sim.render import DepthRenderer

    model, _ = build_model(obj=load_catalog().objects["can_small"], visual=visual)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with DepthRenderer(model, "head_depth", width, height, collision_only=not visual) as renderer:
        renderer.render(data)
        start = time.perf_counter()
        for _ in range(frames):
            renderer.render(data)
        return frames / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hand", default=robot_spec.DEFAULT_HAND, choices=sorted(robot_spec.HANDS))
    args = parser.parse_args(argv)
    for key, value in build_times(args.hand).items():
        print(f"build_model {key}: {value * 1000:.0f} ms")
    sps, ncon = contact_steps_per_second(args.hand)
    print(f"physics, fingers closed on an object: {sps:.0f} steps/s ({sps / 12:.0f} policy steps/s), "
          f"{ncon:.1f} contacts")
    print(f"head depth 84x84, collision shapes: {depth_fps():.0f} frames/s")
    print(f"head depth 84x84, visual meshes: {depth_fps(frames=50, visual=True):.0f} frames/s")


if __name__ == "__main__":
    main()
