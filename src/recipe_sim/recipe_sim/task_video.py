"""Short videos and PNG strips of each task, for people: what the scene, objects and motions look like.

Each task plays one scripted episode (recipe_sim.scripted_play, the same motions that seed the
task-aware initial states) with the visual meshes, rendered in colour from the third-view camera next
to the policy's 84x84 head depth image. Writes <out>/<task>.mp4 and <out>/<task>_strip.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mujoco
import numpy as np
from tqdm import tqdm

from recipe_sim.model.builder import build_model, substeps
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import load_catalog
from recipe_sim.render import DepthRenderer, geom_groups
from recipe_sim.scripted_play import TASK_OBJECTS, play_commands
from recipe_sim.tasks.poses import configured_left_palm, ready_pose, set_coupled

WIDTH, HEIGHT = 480, 360


def _depth_to_rgb(depth: np.ndarray, near: float = 0.2, far: float = 1.5) -> np.ndarray:
    import matplotlib

    v = np.clip((depth - near) / (far - near), 0.0, 1.0)
    return (matplotlib.colormaps["viridis"](1.0 - v)[..., :3] * 255).astype(np.uint8)


def render_task(task: str, seed: int = 0) -> list[np.ndarray]:
    """Frames (H, W, 3) uint8 of one scripted episode: colour third view | head depth (84x84, upscaled)."""
    obj = load_catalog().objects[TASK_OBJECTS[task]]
    spawn = load_scene().spawn_xy
    commands = play_commands(task, spawn, seed=seed, object_name=obj.name)
    model, index = build_model(obj=obj, visual=True)
    data = mujoco.MjData(model)
    q0 = ready_pose(model, index, configured_left_palm())
    data.qpos[index.actuated_qpos_adr] = q0
    set_coupled(model, data, index)
    data.ctrl[index.actuator_ids] = q0
    a = index.object_qpos_adr
    data.qpos[a:a + 3] = [spawn[0], spawn[1], load_scene().table_top_height + obj.resting_height + 0.002]
    data.qpos[a + 3:a + 7] = [1.0, 0.0, 0.0, 0.0]
    mujoco.mj_forward(model, data)
    colour = mujoco.Renderer(model, HEIGHT, WIDTH)
    depth = DepthRenderer(model, "head_depth", 84, 84)
    option = mujoco.MjvOption()
    option.geomgroup[:] = geom_groups(collision_only=False)  # environment + visual meshes
    frames = []
    nsub = substeps()
    try:
        for cmd in commands:
            data.ctrl[index.actuator_ids] = cmd
            mujoco.mj_step(model, data, nstep=nsub)
            colour.update_scene(data, camera="third_view", scene_option=option)
            rgb = colour.render()
            up = np.ones((HEIGHT // 84 + 1, HEIGHT // 84 + 1, 1), np.uint8)
            d = np.kron(_depth_to_rgb(depth.render(data)), up)
            frames.append(np.concatenate([rgb, d[:HEIGHT, :HEIGHT]], axis=1))
    finally:
        colour.close()
        depth.close()
    return frames


def write_outputs(task: str, frames: list[np.ndarray], out: Path, strip_frames: int = 6) -> tuple[Path, Path]:
    import imageio.v2 as imageio

    out.mkdir(parents=True, exist_ok=True)
    video = out / f"{task}.mp4"
    imageio.mimwrite(video, frames, fps=10, macro_block_size=8)
    idx = np.linspace(0, len(frames) - 1, strip_frames).round().astype(int)
    strip = out / f"{task}_strip.png"
    imageio.imwrite(strip, np.concatenate([frames[i][:, :WIDTH] for i in idx], axis=1))
    return video, strip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=sorted(TASK_OBJECTS), choices=sorted(TASK_OBJECTS))
    p.add_argument("--out", type=Path, default=Path("runs/task_videos"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for task in tqdm(a.tasks, desc="tasks"):
        video, strip = write_outputs(task, render_task(task, a.seed), a.out)
        print(f"{task}: {video} {strip}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
