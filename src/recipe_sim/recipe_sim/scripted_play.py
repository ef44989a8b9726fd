"""Scripted "play" around each task: a starter set of task-aware initial states (labelled "scripted").

The paper's initial states come from a person teleoperating the simulated robot for < 30 s per task.
Until a person records some (``recipe_sim.init_states_recorder``), this generator plays the same role
with scripted motions: IK-driven reaches to the object, partial grasps and small lifts (grasp_reach), and
episodes of the closed-loop experts with a little action noise (box_lift, handover), simulated with the real
physics, recording the robot and object state at the 10 Hz policy rate. The states are
physically consistent (the object may be nudged or tipped, as in real play), but they are not human
demonstrations and the file says so (source="scripted").
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
from tqdm import tqdm

from recipe_common import robot_spec
from recipe_common.tasks import TASKS
from recipe_sim.ik import solve_palm_position
from recipe_sim.init_states import InitStates
from recipe_sim.model.builder import ModelIndex, build_model, substeps
from recipe_sim.model.scene import load_scene
from recipe_sim.objects import ObjectSpec, load_catalog
from recipe_sim.tasks.config import TaskConfig, load_task_configs
from recipe_sim.tasks.grasps import load_grasps
from recipe_sim.tasks.poses import arm_posture, configured_left_palm, ready_pose, set_coupled
from recipe_sim.tasks.scripted import plan_side_grasp

TASK_OBJECTS = {name: info.default_object for name, info in TASKS.items()}
_States = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class PlayWorld:
    model: mujoco.MjModel
    data: mujoco.MjData
    index: ModelIndex
    obj: ObjectSpec
    nsub: int
    task_cfg: TaskConfig  # config/tasks.yaml entry of the task played (spawn and goal regions)
    commands: list[np.ndarray] = field(default_factory=list)  # the 26 targets sent at each policy step


def make_world(task: str, object_name: str | None, hand: str = robot_spec.DEFAULT_HAND) -> PlayWorld:
    obj = load_catalog().objects[object_name or TASK_OBJECTS[task]]
    model, index = build_model(hand, obj=obj)
    return PlayWorld(model, mujoco.MjData(model), index, obj, substeps(), load_task_configs().get(task))


def place_object(w: PlayWorld, xy: np.ndarray, yaw: float) -> np.ndarray:
    top = load_scene().table_top_height
    pos = np.array([xy[0], xy[1], top + w.obj.resting_height + 0.002])
    quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    a = w.index.object_qpos_adr
    w.data.qpos[a:a + 3] = pos
    w.data.qpos[a + 3:a + 7] = quat
    return pos


def actuated_q(w: PlayWorld) -> np.ndarray:
    return w.data.qpos[w.index.actuated_qpos_adr].copy()


def object_pose(w: PlayWorld) -> np.ndarray:
    a = w.index.object_qpos_adr
    return w.data.qpos[a:a + 7].copy()


def _arm_ik(w: PlayWorld, side: str, target: np.ndarray) -> np.ndarray:
    """IK on a scratch copy of the state so the simulated state is not teleported."""
    scratch = mujoco.MjData(w.model)
    scratch.qpos[:] = w.data.qpos
    q, _ = solve_palm_position(w.model, scratch, w.index, side, target, posture=arm_posture(side))
    return q


# Object region (world xy, m) kept for episode starts: in front of the robot, within the arms' reach.
WORKSPACE_X = (0.22, 0.55)
WORKSPACE_ABS_Y = 0.30


def _in_workspace(pos: np.ndarray) -> bool:
    return bool(WORKSPACE_X[0] <= pos[0] <= WORKSPACE_X[1] and abs(pos[1]) <= WORKSPACE_ABS_Y)


class _ObjectLost(Exception):
    """The scripted play knocked the object off the table (or the state blew up): the episode ends."""


def object_on_table(w: PlayWorld, pose: np.ndarray) -> bool:
    sc = load_scene()
    inside = np.all(np.abs(pose[:2] - sc.table_center_xy) <= sc.table_half_size[:2])
    return bool(np.isfinite(pose).all() and inside and pose[2] > sc.table_top_height - 0.01 and pose[2] < 1.6)


def _drive(w: PlayWorld, target26: np.ndarray, steps: int, record: _States) -> None:
    """Interpolate from the current targets to ``target26`` over ``steps`` policy steps, recording states.

    States where the object has left the table are useless as episode starts: recording stops there.
    """
    start = w.data.ctrl[w.index.actuator_ids].copy()
    for k in range(1, steps + 1):
        w.data.ctrl[w.index.actuator_ids] = start + (target26 - start) * (k / steps)
        w.commands.append(w.data.ctrl[w.index.actuator_ids].copy())
        mujoco.mj_step(w.model, w.data, nstep=w.nsub)
        q, pose = actuated_q(w), object_pose(w)
        if not (np.isfinite(q).all() and object_on_table(w, pose)):
            raise _ObjectLost
        record.append((q, pose))


def _with_arm(target26: np.ndarray, side: str, q_arm: np.ndarray) -> np.ndarray:
    n = robot_spec.NUM_ARM_JOINTS_PER_SIDE
    out = target26.copy()
    s = 0 if side == "left" else 1
    out[s * n:(s + 1) * n] = q_arm
    return out


def _with_hand(target26: np.ndarray, side: str, closure: float, hand: str) -> np.ndarray:
    n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
    m = robot_spec.NUM_HAND_ACTUATED_PER_SIDE
    s = 0 if side == "left" else 1
    out = target26.copy()
    out[n_arm + s * m:n_arm + (s + 1) * m] = robot_spec.hand_normalized_to_rad(np.full(m, closure), hand)
    return out


def reset_robot(w: PlayWorld) -> np.ndarray:
    """Put the robot at rest in the tasks' ready pose (the pose env episodes start from)."""
    mujoco.mj_resetData(w.model, w.data)
    q0 = ready_pose(w.model, w.index, configured_left_palm())
    w.data.qpos[w.index.actuated_qpos_adr] = q0
    set_coupled(w.model, w.data, w.index)
    w.data.ctrl[w.index.actuator_ids] = q0
    return q0


def _side_grasp_play(w: PlayWorld, rng: np.random.Generator, rec: _States, pos: np.ndarray,
                     target: np.ndarray) -> bool:
    """Grasp-and-reach play with the scripted side grasp: reach over and beside the object, close the
    hand, carry the object toward a goal from the task's goal region and hold it there.

    Returns False (nothing driven) when the object is too low or too far for a side grasp at the grasp's
    orientation (config/grasps.yaml); the caller then plays the position-only reach instead. Closure,
    goal and pace vary per episode, so the states cover approach, contact, grasp, lift and carry.
    """
    side = "left" if pos[1] >= 0 else "right"  # the closer-hand rule of the task
    sgn = 1.0 if side == "left" else -1.0
    closure = rng.uniform(0.6, 0.95)
    assert w.task_cfg.goal is not None
    top = load_scene().table_top_height
    goal = w.task_cfg.goal.sample(rng, 1, top, mirror_y=np.array([side == "right"]))[0]
    grasp = load_grasps().get()
    try:
        pre = plan_side_grasp(w.model, w.index, target, pos + np.array([0.0, sgn * 0.04, 0.06]), side,
                              grasp=grasp)
        plan = plan_side_grasp(w.model, w.index, target, pos, side, closure=closure, grasp=grasp)
        try:
            carry = plan_side_grasp(w.model, w.index, target, goal, side, grasp=grasp).approach
        except ValueError:
            carry = plan.lifted
    except ValueError:
        return False
    n_arm = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE
    carry = carry.copy()
    carry[n_arm:] = plan.closed[n_arm:]
    pace = int(rng.integers(0, 4))
    legs = ((pre.approach, 7 + pace), (plan.approach, 5 + pace), (plan.closed, 5), (carry, 10 + pace),
            (carry, 4))
    for tgt, steps in legs:
        _drive(w, tgt, steps, rec)
    return True


def play_episode(w: PlayWorld, task: str, rng: np.random.Generator, rec: _States,
                 object_xy: np.ndarray | None = None) -> None:
    """One scripted play episode, appending the (q, object_pose) states visited at 10 Hz to ``rec``.

    The object starts at ``object_xy`` on the table, or at a random reachable spot.
    """
    target = reset_robot(w)
    w.commands.clear()
    hand = w.index.hand
    if task == "grasp_reach":  # the task's own spawn region (config/tasks.yaml)
        xy = w.task_cfg.spawn.sample(rng, 1, 0.0)[0, :2]
    else:
        xy = np.array([rng.uniform(0.30, 0.42), rng.uniform(-0.03, 0.03)])
    if object_xy is not None:
        xy = np.asarray(object_xy, np.float64)
    pos = place_object(w, xy, rng.uniform(-0.75, 0.75))
    mujoco.mj_forward(w.model, w.data)
    _drive(w, target, 3, rec)  # settle
    closure = rng.uniform(0.3, 0.8)
    lift = rng.uniform(0.0, 0.10)
    if task == "grasp_reach" and _side_grasp_play(w, rng, rec, pos, target):
        return
    if task in ("grasp_reach", "handover"):
        # grasp_reach: the closer hand (by y); handover: hand A is random, B is the other.
        closer = "left" if pos[1] >= 0 else "right"
        side = closer if task == "grasp_reach" else str(rng.choice(["left", "right"]))
        sgn = 1.0 if side == "left" else -1.0
        reach = w.obj.resting_height + 0.02
        for off, steps in (((-0.05, sgn * 0.10, 0.15), 8), ((-0.04, sgn * 0.06, reach), 8)):
            target = _with_arm(target, side, _arm_ik(w, side, pos + np.array(off)))
            _drive(w, target, steps, rec)
        target = _with_hand(target, side, closure, hand)
        _drive(w, target, 6, rec)
        target = _with_arm(target, side, _arm_ik(w, side, pos + np.array([-0.04, sgn * 0.06, reach + lift])))
        _drive(w, target, 6, rec)
        if task == "handover":
            other = "right" if side == "left" else "left"
            mid = np.array([pos[0] + 0.02, 0.0, pos[2] + 0.12])
            target = _with_arm(target, side, _arm_ik(w, side, mid + np.array([0, sgn * 0.05, 0])))
            target = _with_arm(target, other, _arm_ik(w, other, mid - np.array([0, sgn * 0.08, 0])))
            _drive(w, target, 10, rec)
    elif task == "box_lift":
        half_y = w.obj.size[1] if w.obj.shape == "box" else w.obj.size[0]
        # Come down outside the box, then close in on its sides.
        for gap, dz, steps in ((0.10, 0.15, 8), (0.10, 0.0, 6), (0.03, 0.0, 6)):
            for side, sgn in (("left", 1.0), ("right", -1.0)):
                tgt = pos + np.array([-0.02, sgn * (half_y + gap), dz])
                target = _with_arm(target, side, _arm_ik(w, side, tgt))
            _drive(w, target, steps, rec)
        for side in ("left", "right"):
            target = _with_hand(target, side, closure * 0.6, hand)
        _drive(w, target, 4, rec)
        for side, sgn in (("left", 1.0), ("right", -1.0)):
            tgt = pos + np.array([-0.02, sgn * (half_y + 0.01), lift])
            target = _with_arm(target, side, _arm_ik(w, side, tgt))
        _drive(w, target, 8, rec)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_OBJECTS)}")


EXPERT_PLAY_TASKS = ("box_lift", "handover")  # played by the closed-loop experts (recipe_sim.experts)
PLAY_ACTION_NOISE = 0.02  # rad (normalized for the hands): the experts' play wanders off their plan a little


def expert_states(task: str, name: str, episodes: int, seed: int, every: int = 2,
                  progress: bool = True) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], str]:
    """States (q, object pose, object) every ``every`` policy steps of ``episodes`` expert episodes with the
    real env (its spawn regions), with a little action noise; and the hand."""
    from dataclasses import replace

    from recipe_sim.experts import make_expert
    from recipe_sim.randomization import RandomizationConfig
    from recipe_sim.vec_env import RecipeVecEnv

    off = RandomizationConfig.disabled()
    rand = replace(off, action_noise=replace(off.action_noise, enabled=True, std=PLAY_ACTION_NOISE))
    env = RecipeVecEnv(task, min(episodes, 16), objects=[name], seed=seed, randomization=rand)
    out: list[tuple[np.ndarray, np.ndarray, str]] = []
    try:
        idx, oa = env.index, env.index.object_qpos_adr
        rounds = -(-episodes // env.num_envs)
        for r in tqdm(range(rounds), desc=f"expert play {task} {name}", disable=not progress):
            env.reset()
            expert = make_expert(env)
            left = min(env.num_envs, episodes - r * env.num_envs)
            for t in range(int(env.max_episode_length) - 1):  # stop before the env's own reset
                env.step(expert())
                if t % every == 0:
                    for i in range(left):
                        out.append((env.physics.qpos[i, idx.actuated_qpos_adr].copy(),
                                    env.physics.qpos[i, oa : oa + 7].copy(), name))
    finally:
        env.close()
    return out, env.hand


def generate(task: str, episodes: int = 10, seed: int = 0, object_name: str | Sequence[str] | None = None,
             progress: bool = True) -> InitStates:
    """A starter set of scripted task-aware initial states for ``task``.

    ``object_name`` may list several catalog objects: ``episodes`` are played with each, and every state
    records its object, so an env training on that group starts each object from its own states. box_lift
    and handover are played by their closed-loop experts (default objects: the task's grouping).
    """
    if task not in TASK_OBJECTS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_OBJECTS)}")
    names = [object_name] if object_name is None or isinstance(object_name, str) else list(object_name)
    if task in EXPERT_PLAY_TASKS and names == [None]:
        from recipe_sim.ppo.envs import resolve_subtasks

        names = [o for sub in resolve_subtasks(task, None) for o in sub.objects]
    rng = np.random.default_rng(seed)
    states: list[tuple[np.ndarray, np.ndarray, str]] = []
    hand = robot_spec.DEFAULT_HAND
    for k, name in enumerate(names):
        if task in EXPERT_PLAY_TASKS:
            played, hand = expert_states(task, str(name), episodes, seed + k, progress=progress)
            states += played
            continue
        w = make_world(task, name)
        hand = w.index.hand
        for _ in tqdm(range(episodes), desc=f"scripted play {task} {w.obj.name}", disable=not progress):
            rec: list[tuple[np.ndarray, np.ndarray]] = []
            try:
                play_episode(w, task, rng, rec)
            except _ObjectLost:
                pass  # keep the states recorded before the object was knocked away
            states += [(q, pose, w.obj.name) for q, pose in rec]
    # Play sometimes pushes the object toward the table's edges; episodes should start where the hands
    # can still work with it.
    states = [st for st in states if _in_workspace(st[1][:3])]
    if not states:
        raise RuntimeError(f"scripted play for {task} produced no valid state")
    lo, hi = robot_spec.actuated_limits(hand)
    q = np.clip(np.stack([s[0] for s in states]), lo, hi)
    pose = np.stack([s[1] for s in states])
    pose[:, 3:] /= np.linalg.norm(pose[:, 3:], axis=1, keepdims=True)
    used = sorted({s[2] for s in states})
    return InitStates(task=task, hand=hand, source="scripted", q=q, object_pose=pose,
                      objects=np.array([s[2] for s in states]),
                      note=f"{'expert' if task in EXPERT_PLAY_TASKS else 'scripted'} play, {episodes} "
                      f"episodes per object, seed {seed}, objects {', '.join(used)}")


def play_commands(task: str, object_xy: np.ndarray, seed: int = 0, object_name: str | None = None,
                  hand: str = robot_spec.DEFAULT_HAND) -> np.ndarray:
    """The (T, 26) joint targets of one scripted play episode with the object at ``object_xy``.

    A stand-in task motion for demos of the deploy pipeline until a trained policy drives the robot.
    """
    w = make_world(task, object_name, hand)
    try:
        play_episode(w, task, np.random.default_rng(seed), [], object_xy=object_xy)
    except _ObjectLost:
        pass
    return np.array(w.commands)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Generate scripted task-aware initial states (source=scripted).")
    p.add_argument("--task", required=True, choices=sorted(TASK_OBJECTS))
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--object", nargs="+", default=None,
                   help="catalog object name(s), --episodes each (default depends on the task)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    states = generate(a.task, a.episodes, a.seed, a.object)
    path = states.save(a.out)
    print(f"wrote {len(states)} scripted states for {a.task} to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
