"""The policy node's core, without ROS: inputs in, joint targets (or a reason to hold) out, once per tick.

``PolicyController`` owns the episode state machine and the checks that decide whether a command may be
sent; ``recipe_policy.node`` is the thin ROS shell that feeds it messages and publishes what it returns
(as the driver does: node -> controller -> safety). Once per command tick (10 Hz, the specialists' rate):

1. every input the policy needs must be fresh (joint state, object position unless LOST, head depth for
   depth policies; ages against the configured limits) or the tick HOLDS with the reason;
2. the observation (``recipe_common.observation.policy_state`` and ``policy_image``: the same functions the
   sim uses) goes into the shared action-chunk runtime (``recipe_policy.runtime``);
3. when an inference is due, ``predict`` runs; an overrun (slower than ``max_inference_s``) or a rejected
   chunk (NaN/inf) HOLDS with the reason and the chunk is dropped;
4. the runtime's blended action becomes joint targets; for one-hand tasks the idle arm and hand keep the
   episode's start pose, as the training env holds them (``idle_arm: hold``).

The first tick of an episode of a chunked policy (action_horizon > 1) commands the start pose (the joint
positions measured at ``start``) while its first chunk is computed, as the sim's evaluation does (the
ready pose at step 0; the chunk is used from step 1). This is not cosmetic: the driver eases the gap
between the pose it holds and a new source's *first* target over ``ramp_time`` (1 s). Without it the first
target was already row ~0.3 of a chunk whose arm targets lead the arm by up to 0.4 rad, and that offset,
faded over a second, slowed the whole reach: on the twin the arm trailed the sim's by ~0.1 s at the grasp,
and trials the sim wins stalled with the can lifted too little (``docs/deploy.md``).

Handover episodes have two goals: the policy observes the transfer point until the block is lifted there,
then the final goal (``recipe_common.handover_stages``: the training env's rule on perceived positions).

HOLDING sends nothing: the driver's watchdog holds the pose, so a made-up command can never go out.
HOLDING ends by itself at the first tick whose checks pass again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recipe_common import robot_spec
from recipe_common.handover_stages import HandoverGoals, TransferRule
from recipe_common.observation import policy_state
from recipe_common.realtime import RealtimeSection
from recipe_common.tasks import task_info
from recipe_policy.interface import DeployablePolicy
from recipe_policy.runtime import ActionChunkRuntime, ObservationWindow, RuntimeConfig

IDLE, RUNNING, HOLDING, FAULT = "idle", "running", "holding", "fault"
N_ARM = 2 * robot_spec.NUM_ARM_JOINTS_PER_SIDE


@dataclass(frozen=True)
class Limits:
    """Freshness and timing limits (config/policy_node.yaml)."""

    max_joint_state_age_s: float = 0.2
    max_object_age_s: float = 0.5
    max_depth_age_s: float = 0.5
    max_inference_s: float = 0.25


@dataclass
class Stamped:
    t: float
    value: np.ndarray


@dataclass(frozen=True)
class Tick:
    """What one tick decided: joint targets (26,) in radians, or None and why; plus status figures."""

    targets: np.ndarray | None
    state: str
    reason: str = ""
    inference_s: float | None = None  # duration of a predict run this tick
    latency_s: float | None = None  # observation capture -> this command, for the first command of a chunk


def one_hand_side(object_pos_world: np.ndarray, goal_world: np.ndarray | None) -> int:
    """The active hand of a one-hand task: 0 (left) or 1 (right).

    Training picks the hand whose palm is nearer the object at reset and draws the goal on that hand's
    side (goal y >= 0 for the left hand, mirrored for the right). So the goal's side names the hand the
    policy expects; without a goal, the object's side does (the ready pose is mirror-symmetric in y). For
    an object near y = 0 the goal is the reliable one: the palms are then nearly equidistant.
    """
    ref = goal_world if goal_world is not None else object_pos_world
    return 0 if float(ref[1]) >= 0.0 else 1


class PolicyController:
    """Episode state machine + input checks + the runtime for one loaded policy."""

    def __init__(self, policy: DeployablePolicy, limits: Limits | None = None,
                 runtime_config: RuntimeConfig | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 realtime: RealtimeSection | None = None) -> None:
        self.policy = policy
        # where the inference runs (recipe_common.realtime: SCHED_FIFO while it runs, if asked and allowed)
        self.realtime = realtime or RealtimeSection(0)
        self.spec = policy.spec
        self.limits = limits or Limits()
        self.runtime = ActionChunkRuntime(self.spec, runtime_config or RuntimeConfig())
        self.clock = clock
        self.one_hand = not task_info(self.spec.task).bimanual
        self.state = IDLE
        self.reason = "waiting for an episode start"
        self.goal: np.ndarray | None = None
        self.stages: HandoverGoals | None = None  # handover: the goal per stage
        # Read once, at start-up (a bad config/rewards.yaml stops the node there, not at an episode start).
        self._transfer_rule = TransferRule.load() if self.spec.task == "handover" else None
        self.chunk_index = 0
        self._q: Stamped | None = None
        self._obj: Stamped | None = None
        self._obj_lost = ""
        self._depth: Stamped | None = None
        self._hold_action: np.ndarray | None = None  # the idle side's entries (policy action units)
        self._hold_mask: np.ndarray | None = None
        self._latency_t_obs: float | None = None
        self._capture_t = 0.0  # capture stamp (joint state) of the observation assembled last
        self._start_action: np.ndarray | None = None  # the start pose (policy action units)
        self._prime = False  # the next RUNNING tick commands the start pose (chunked policies)

    # --- inputs ---------------------------------------------------------------------------------------

    def set_joint_state(self, t: float, q: np.ndarray) -> None:
        self._q = Stamped(t, np.asarray(q, dtype=np.float64))

    def set_object(self, t: float, pos_world: np.ndarray | None, lost_reason: str = "") -> None:
        """A perception update: a position (world frame), or None with why it is not usable (LOST)."""
        if pos_world is None:
            self._obj_lost = lost_reason or "object lost"
            return
        self._obj_lost = ""
        self._obj = Stamped(t, np.asarray(pos_world, dtype=np.float64))

    def set_depth(self, t: float, image: np.ndarray) -> None:
        self._depth = Stamped(t, np.asarray(image, dtype=np.float32))

    # --- episode --------------------------------------------------------------------------------------

    def start(self, goal_world: np.ndarray | None, task: str = "", side: str = "",
              final_goal_world: np.ndarray | None = None) -> tuple[bool, str]:
        """Begin an episode. ``goal_world``: the task's goal (handover: the transfer point);
        ``final_goal_world``: handover only, where hand B takes the block."""
        if task and task != self.spec.task:
            return False, f"this policy runs task {self.spec.task!r}, not {task!r}"
        if side not in ("", *robot_spec.SIDES):
            return False, f"side must be 'left', 'right' or '' (auto), got {side!r}"
        if side and not self.one_hand:
            return False, f"task {self.spec.task!r} uses both hands; no side to pick"
        goal = None
        if self.spec.has_goal:
            if goal_world is None or np.shape(goal_world) != (3,) or not np.isfinite(goal_world).all():
                return False, f"task {self.spec.task!r} needs a finite 3-d goal"
            goal = np.asarray(goal_world, dtype=np.float64)
        elif goal_world is not None and len(goal_world):
            return False, f"task {self.spec.task!r} has no goal"
        handover = self.spec.task == "handover"
        final = None if final_goal_world is None or not len(final_goal_world) else final_goal_world
        if handover and (final is None or np.shape(final) != (3,) or not np.isfinite(final).all()):
            return False, "task 'handover' needs a finite 3-d final_goal (where hand B takes the block)"
        if not handover and final is not None:
            return False, f"task {self.spec.task!r} has no final_goal (only handover has two goals)"
        now = self.clock()
        missing = self._stale_inputs(now)
        if missing:
            return False, f"cannot start: {missing}"
        assert self._q is not None and self._obj is not None
        hold_mask = None
        self._start_action = robot_spec.joint_targets_to_action(self._q.value[:robot_spec.ACTION_DIM],
                                                                self.spec.hand)
        if self.one_hand:
            acting = one_hand_side(self._obj.value, goal)
            if side and robot_spec.SIDES.index(side) != acting:
                return False, (f"the {side} hand cannot take a goal on the {robot_spec.SIDES[acting]} side: "
                               f"the policy was trained with goals on the acting hand's side")
            hold_mask = robot_spec.side_action_mask(1 - acting)
            self._hold_action = self._start_action
        self._hold_mask, self.goal = hold_mask, goal
        self.stages = None
        if handover:
            assert goal is not None and final is not None
            # rest height: the block's centre as perceived now, standing on the table (as training's rest_z)
            self.stages = HandoverGoals(goal, np.asarray(final, dtype=np.float64), float(self._obj.value[2]),
                                        self._transfer_rule)
        self.runtime.reset()
        self.policy.reset()
        self._prime = self.spec.action_horizon > 1
        self.state, self.reason, self.chunk_index = RUNNING, "episode started", 0
        return True, "started"

    def stop(self, reason: str = "stopped") -> None:
        self.state, self.reason = IDLE, reason
        self.runtime.reset()

    # --- the tick -------------------------------------------------------------------------------------

    def _stale_inputs(self, now: float) -> str:
        lim = self.limits
        if self._q is None:
            return "no joint state yet"
        if now - self._q.t > lim.max_joint_state_age_s:
            return f"joint state is {now - self._q.t:.2f} s old (> {lim.max_joint_state_age_s} s)"
        if self.spec.uses_object_pos or self.one_hand:
            if self._obj_lost:
                return f"object: {self._obj_lost}"
            if self._obj is None:
                return "no object position yet"
            if now - self._obj.t > lim.max_object_age_s:
                return f"object position is {now - self._obj.t:.2f} s old (> {lim.max_object_age_s} s)"
        if self.spec.uses_depth:
            if self._depth is None:
                return "no head depth image yet"
            if now - self._depth.t > lim.max_depth_age_s:
                return f"head depth is {now - self._depth.t:.2f} s old (> {lim.max_depth_age_s} s)"
        return ""

    def _hold(self, reason: str, inference_s: float | None = None) -> Tick:
        self.state, self.reason = HOLDING, reason
        return Tick(None, HOLDING, reason, inference_s)

    def tick(self) -> Tick:
        now = self.clock()
        if self.state in (IDLE, FAULT):
            return Tick(None, self.state, self.reason)
        stale = self._stale_inputs(now)
        if stale:
            return self._hold(stale)
        assert self._q is not None
        obj = self._obj.value if self._obj is not None else np.zeros(3)
        note = ""
        if self.stages is not None:
            stage = self.stages.stage
            self.goal = self.stages.update(obj)
            if self.stages.stage != stage:
                note = "handover: the block reached the transfer point; the policy now sees the final goal"
        goal = self.goal if self.spec.has_goal else None
        state = policy_state(self._q.value[:robot_spec.ACTION_DIM], obj, goal)
        depth = self._depth.value if self.spec.uses_depth and self._depth is not None else None
        # The observation is stamped when it is assembled: inputs older than their limits never get here, and
        # a chunk must not start in the past because a joint state arrived late on a busy machine (every row
        # of a specialist's one-row chunk would be dropped). The latency figure still counts from capture.
        verdict = self.runtime.add_observation(now, state, depth)
        self._capture_t = self._q.t
        if not verdict:
            return self._hold(f"observation rejected: {verdict.reason}")
        inference_s = None
        window = self.runtime.request_inference(now)
        if isinstance(window, ObservationWindow):
            held = self._infer(window)
            inference_s = self._last_inference_s
            if held is not None:
                return held
        if self._prime and self._start_action is not None:
            # the start pose while the first chunk is computed (module docstring); its latency sample is
            # dropped, since its first command goes out a tick later by design
            self._prime, self._latency_t_obs = False, None
            self.state, self.reason = RUNNING, "start pose while the first chunk is computed"
            targets = robot_spec.action_to_joint_targets(self._start_action, self.spec.hand)
            return Tick(targets, RUNNING, self.reason, inference_s, None)
        result = self.runtime.action(self.clock())
        if result.action is None:
            return self._hold(result.reason, inference_s)
        action = result.action
        if self._hold_mask is not None and self._hold_action is not None:
            action = np.where(self._hold_mask, self._hold_action, action)
        targets = robot_spec.action_to_joint_targets(action, self.spec.hand)
        latency = None
        if self._latency_t_obs is not None:
            latency, self._latency_t_obs = self.clock() - self._latency_t_obs, None
        self.state, self.reason = RUNNING, note
        return Tick(targets, RUNNING, note, inference_s, latency)

    def _infer(self, window: ObservationWindow) -> Tick | None:
        t0 = self.clock()
        try:
            with self.realtime:
                actions = self.policy.predict(window.states, window.depths)
        except Exception as exc:  # a broken model must not take the node down: hold and say why
            self.runtime.cancel_inference()
            self._last_inference_s = self.clock() - t0
            return self._hold(f"inference failed: {exc!r}", self._last_inference_s)
        t1 = self.clock()
        self._last_inference_s = t1 - t0
        if self._last_inference_s > self.limits.max_inference_s:
            self.runtime.cancel_inference()
            return self._hold(f"inference overrun: {self._last_inference_s:.3f} s > "
                              f"{self.limits.max_inference_s} s (chunk dropped)", self._last_inference_s)
        verdict = self.runtime.add_chunk(actions, window.t_obs, t1)
        if not verdict:
            return self._hold(f"chunk rejected: {verdict.reason}", self._last_inference_s)
        self.chunk_index += 1
        self._latency_t_obs = self._capture_t
        return None

    _last_inference_s: float = 0.0
