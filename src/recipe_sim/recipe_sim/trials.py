"""Trials on the MuJoCo twin: spawn the object as training does, judge success as training does.

The deploy stack runs a policy on the twin through ROS; whether a trial succeeded must not depend on
anything the policy side sees. ``TwinTrials`` reads the twin's own ground truth (joint positions, object
pose, fingertip sites) once per policy step and feeds it to the task's own success detector (the same
``Task.evaluate`` the vectorized env uses, for one env), so "success" means exactly what it means in
``eval``: the success condition held for the task's ``hold_steps`` consecutive policy steps.

A trial: ``draw(seed)`` picks the object's pose like an env reset does (the task's spawn region plus the
randomization profile's initial position and yaw offsets); the caller brings the robot to ``ready_q``
(through the driver, as on the real robot) and then ``start(setup)`` places the object, picks the goal and
the active hand from that state (closer-hand rule), and arms the judge; ``judge()`` once per policy step
returns the verdict. Pure simulation logic: the ROS service around it is recipe_bringup.trial_node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recipe_sim.model.scene import load_scene
from recipe_sim.observations import quat_rotate_np
from recipe_sim.randomization import RandomizationConfig
from recipe_sim.rewards import load_reward_configs
from recipe_sim.tasks import make_task
from recipe_sim.tasks.base import Frame, rest_height, sticker_points
from recipe_sim.tasks.config import load_task_configs
from recipe_sim.tasks.handover import HandoverTask
from recipe_sim.tasks.poses import MIRROR, configured_left_palm, ready_pose
from recipe_sim.twin import SimTwin

if TYPE_CHECKING:
    from recipe_sim.distill.eval_generalist import InputAge

SPAWN_CLEARANCE = 0.001  # m, as vec_env: no initial penetration of the table
# From hanging arms a straight joint-space move to the ready pose drives the hands into the table's front
# edge (as it would on the real robot). Below the table top the path goes through two waypoints of the left
# arm (mirrored for the right): shoulder back and out with the elbow nearly straight, then the elbow bent
# with the hand above the table, then the ready pose.
APPROACH_WAYPOINTS = (
    np.array([0.5, 0.2, 0.0, -0.3, 0.0, 0.0, 0.0]),
    np.array([0.5, 0.2, 0.0, -2.0, 0.0, 0.0, 0.0]),
)
LOW_HANDS_MARGIN = 0.05  # m above the table top under which the approach waypoints are used


@dataclass(frozen=True)
class TrialSetup:
    seed: int
    object_pose: np.ndarray  # (7,) xyz + wxyz, world frame


@dataclass(frozen=True)
class Verdict:
    state: str  # running | success | failure | timeout
    steps: int  # policy steps judged so far
    success_step: int | None  # first step at which the success condition had held hold_steps times
    message: str = ""

    @property
    def final(self) -> bool:
        return self.state != "running"


class TwinTrials:
    """Spawn, goal and success of one task on a SimTwin (one env's worth of the task)."""

    def __init__(self, twin: SimTwin, task: str, randomization: RandomizationConfig | None = None) -> None:
        if twin.index.object_spec is None:
            raise ValueError("the twin has no object: build it with object_name=...")
        self.twin = twin
        self.task_cfg = load_task_configs().get(task)
        reward_cfg = load_reward_configs()[self.task_cfg.reward_config]
        scene = load_scene()
        self.table_top = float(scene.table_top_height)
        self.spawn_yaw = float(scene.spawn_yaw)
        self.rand = RandomizationConfig.load() if randomization is None else randomization
        self.spec = twin.index.object_spec
        stickers = sticker_points(self.spec, 1.0, self.task_cfg.sticker_count)
        self.task = make_task(self.task_cfg, reward_cfg, 1, self.table_top, len(stickers))
        self.task.set_objects(np.array([0]), [self.spec], np.array([1.0]))
        self.rest_z = self.table_top + rest_height(self.spec)
        self.ready_q = ready_pose(twin.model, twin.index, configured_left_palm())
        self.time_limit_s = self.task_cfg.episode_length * self.policy_dt
        self._steps = 0
        self._final: Verdict | None = None
        self._armed = False

    @property
    def policy_dt(self) -> float:
        return 0.1  # the specialists' 10 Hz; the judge ticks at this rate

    @property
    def goal(self) -> np.ndarray | None:
        """The goal the policy starts with (handover: the transfer point)."""
        if not self.task.has_goal:
            return None
        if isinstance(self.task, HandoverTask):
            return self.task.transfer_goal[0].numpy().astype(np.float64)
        return self.task.goal[0].numpy().astype(np.float64)

    @property
    def final_goal(self) -> np.ndarray | None:
        """handover: where hand B takes the block after the transfer; None for the other tasks."""
        if isinstance(self.task, HandoverTask):
            return self.task.final_goal[0].numpy().astype(np.float64)
        return None

    def path_to_ready(self) -> list[np.ndarray]:
        """Joint targets (26,) to pass through, in order, from the twin's current pose to ``ready_q``."""
        palms = self.twin.ground_truth()["palms"]
        if float(np.min(palms[:, 2])) > self.table_top + LOW_HANDS_MARGIN:
            return [self.ready_q.copy()]
        path = []
        for left in APPROACH_WAYPOINTS:
            q = self.ready_q.copy()
            q[:7], q[7:14] = left, left * MIRROR
            path.append(q)
        return [*path, self.ready_q.copy()]

    # --- a new trial ------------------------------------------------------------------------------------

    def draw(self, seed: int) -> TrialSetup:
        """The object pose of a trial: the task's spawn region + the profile's initial offsets."""
        rng = np.random.default_rng(seed)
        pos = self.task.spawn_positions(np.array([0]), rng)[0].astype(np.float64)
        item, yaw_item = self.rand.object_init_pos, self.rand.object_init_yaw
        if item.enabled:
            pos[:2] += rng.uniform(*item.range, size=2)
        yaw = self.spawn_yaw + (rng.uniform(*yaw_item.range) if yaw_item.enabled else 0.0)
        pos[2] = self.rest_z + SPAWN_CLEARANCE
        return TrialSetup(seed=int(seed),
                          object_pose=np.array([*pos, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]))

    def start(self, setup: TrialSetup) -> None:
        """Place the object (robot already at the ready pose), pick goal and hand, arm the judge."""
        self.twin.set_object_pose(setup.object_pose)
        frame = self.frame()
        rng = np.random.default_rng(setup.seed)
        self.task.finish_reset(np.array([0]), frame, np.array([self.rest_z]), rng)
        self._steps, self._final, self._armed = 0, None, True

    # --- judging ------------------------------------------------------------------------------------------

    def frame(self) -> Frame:
        """The twin's ground truth as a one-env Frame (what vec_env builds from its physics)."""
        s = self.twin.ground_truth()
        quat = s["object_quat"] / max(np.linalg.norm(s["object_quat"]), 1e-9)
        angvel = quat_rotate_np(quat[None], s["object_angvel"][None])[0]  # free-joint angvel is body frame
        zeros = np.zeros(len(s["q"]))

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32)[None])

        return Frame(q=t(s["q"]), qd=t(s["qd"]), obj_pos=t(s["object_pos"]), obj_quat=t(quat),
                     obj_linvel=t(s["object_linvel"]), obj_angvel=t(angvel), tips=t(s["tips"]),
                     palms=t(s["palms"]), actions=t(zeros), prev_actions=t(zeros),
                     hands_touching=torch.as_tensor(s["hands_touching"])[None])

    def judge(self) -> Verdict:
        """Call once per policy step after ``start``: the verdict so far (final states stay final)."""
        if self._final is not None:
            return self._final
        if not self._armed:
            return Verdict("idle", 0, None, "no trial started")
        out = self.task.evaluate(self.frame())
        self._steps += 1
        if bool(out.success[0]):
            self._final = Verdict("success", self._steps, self._steps)
        elif bool(out.failure[0]):
            self._final = Verdict("failure", self._steps, None, "the object fell off the table or flew away")
        elif self._steps >= self.task_cfg.episode_length:
            self._final = Verdict("timeout", self._steps, None,
                                  f"no success within {self.time_limit_s:.1f} s")
        return self._final or Verdict("running", self._steps, None)


def sim_success_on_trial_spawns(policy: Any, task: str, object_name: str, seeds: Sequence[int],
                                randomization: RandomizationConfig | None = None,
                                env_randomization: RandomizationConfig | None = None,
                                latency_s: float = 0.05,
                                command_path: Callable[[], Any] | None = None,
                                input_age: InputAge | None = None) -> np.ndarray:
    """(len(seeds),) bool: closed-loop sim episodes (the vectorized env, one env per seed) started where the
    twin's trials with those seeds start: same object pose, goal and active hand, the robot at the ready pose.

    ``policy`` is a DeployablePolicy (``recipe_policy.loading.load_policy``); it drives the env through the
    runtime the policy node uses (``recipe_sim.distill.eval_generalist.ChunkController``: rendered head depth
    for depth policies, chunks arriving ``latency_s`` after their observation). This is the sim side of
    "deploy success vs the same policy's closed-loop sim evaluation on the same spawns" (deploy_bench).
    ``env_randomization`` defaults to none: the twin runs the nominal model too. ``command_path``: a
    factory of what the robot's driver does between the policy and the joints
    (``recipe_gr1_driver.command_path``; ``RecipeVecEnv.set_command_path``), None to command the actuators
    directly as training does. ``input_age``: depth and object position as old as the stack delivers them
    (``eval_generalist.InputAge``), None for current inputs.
    """
    from recipe_policy.runtime import RuntimeConfig
    from recipe_sim.distill.eval_generalist import ChunkController, env_overrides
    from recipe_sim.vec_env import RecipeVecEnv

    seeds = list(seeds)
    twin = SimTwin(object_name=object_name)
    trials = TwinTrials(twin, task, randomization)
    env = RecipeVecEnv(task, len(seeds), objects=[object_name], seed=0,
                       randomization=env_randomization or RandomizationConfig.disabled(),
                       depth_camera="head_depth" if policy.spec.uses_depth else None,
                       task_overrides=env_overrides(policy))
    env.set_command_path(command_path)
    try:
        env.reset()
        poses = np.zeros((len(seeds), 7))
        for i, seed in enumerate(seeds):
            setup = trials.draw(seed)
            twin.reset(trials.ready_q)
            trials.start(setup)
            poses[i] = setup.object_pose
            env.task.anchor[i] = torch.as_tensor(setup.object_pose[:3], dtype=torch.float32)
            if trials.task.has_goal:
                env.task.goal[i] = trials.task.goal[0]
            if hasattr(trials.task, "side"):
                env.task.side[i] = trials.task.side[0]
            if isinstance(trials.task, HandoverTask):
                assert isinstance(env.task, HandoverTask)
                env.task.set_episode(i, int(trials.task.side_a[0]), trials.task.transfer_goal[0],
                                     trials.task.final_goal[0])
        env.teleport(np.arange(len(seeds)), q=np.tile(env.ready_q, (len(seeds), 1)), object_pose=poses)
        act = ChunkController(env, policy, RuntimeConfig(), latency_s, input_age)
        obs = env.get_observations()
        success = np.zeros(len(seeds), dtype=bool)
        finished = np.zeros(len(seeds), dtype=bool)
        for _ in range(env.max_episode_length):
            obs, _, dones, extras = env.step(act(obs))
            done = dones.numpy().astype(bool)
            if done.any():
                flags = extras["log"]["/episode/success"].numpy().astype(bool)
                for k, i in enumerate(np.flatnonzero(done)):
                    if not finished[i]:
                        success[i], finished[i] = flags[k], True
            if finished.all():
                break
        return success
    finally:
        env.close()
        twin.close()
