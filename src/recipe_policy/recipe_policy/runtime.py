"""Action-chunk execution: the one runtime between a DeployablePolicy and the joint commands.

Shared by the sim evaluation of a generalist (``eval_generalist``) and the policy node, so what is
evaluated in sim is what runs on the robot. Pure and clock-injected: every call takes the time ``t``
(seconds, any monotonic clock) and nothing here sleeps, spawns threads or reads a clock, so tests drive
it with made-up times and the node with its ROS clock.

The cycle (``spec`` is the policy's ``PolicySpec``):

1. ``add_observation(t, state, depth)`` whenever inputs arrive (the node: at its 10 Hz command rate with
   the latest joint state, object position and policy depth image).
2. ``request_inference(t)``: when due (on a grid of ``spec.inference_period``, fresh inputs, no inference
   in flight) it returns the observation window: ``spec.n_obs_steps`` rows at ``spec.action_dt`` spacing
   ending at the newest observation (time ``t_obs``); rows before the first observation repeat it.
3. ``add_chunk(actions, t_obs, t)`` with the policy's ``(action_horizon, 26)`` output, row k meant for
   ``t_obs + k * action_dt``. Chunks are validated (shape, NaN/inf -> rejected with a reason) and clipped
   to the robot's limits. Latency is compensated by these timestamps: rows whose time has passed when the
   chunk arrives are never used.
4. ``action(t)`` at the command rate: the blend of every chunk that covers ``t`` (temporal ensembling:
   the j-th newest chunk weighs ``exp(-ensemble_decay * j)``; HATO and ACT do this on real robots so
   that successive chunks do not make the arm jerk), linearly interpolated between rows when
   ``interpolate`` (so the node may also sample it at the driver rate), plus a re-anchoring offset: when
   a chunk arrives, the jump it would cause in the blended target is measured and faded out over
   ``reanchor_fade_s``, so a chunk computed from an older observation does not yank the targets back.
   It returns ``None`` with a reason when there is nothing fresh to command (no chunk yet, the newest
   chunk's observation older than ``max_chunk_age_s``, every chunk exhausted): the caller then HOLDS.

Every returned action is finite and inside ``robot_spec`` limits (arms: joint limits in radians, hands:
0..1), so ``robot_spec.action_to_joint_targets`` of it is always a valid command.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from recipe_common import robot_spec
from recipe_policy.interface import PolicySpec

TIME_EPS = 1e-6  # s: tolerance on timestamp comparisons (float sums of 0.1 s steps)
# Fraction of inference_period by which an inference may start early. Callers tick on timers that jitter
# by milliseconds; with a strict check a tick 2 ms early is "not due", the whole tick is skipped and a
# one-row chunk (a specialist's) runs out: the node would hold on ~40% of its ticks (seen on the twin).
DUE_SLACK = 0.25
# Inferences are due on a fixed grid of inference_period (not a period after the last request): a tick
# that runs late on a busy machine must not push every later inference back, which cost the node one
# inference in ~30 at 5 Hz (4.86 Hz measured). A request a whole period or more behind its slot (a hold,
# a stall: a slot was missed) starts a new grid at its own time instead of firing catch-up calls.
REPHASE_AFTER = 1.0


@dataclass(frozen=True)
class RuntimeConfig:
    """``runtime:`` of config/policy.yaml (recipe_policy.config.load_runtime_config)."""

    ensemble_decay: float = 0.5  # weight exp(-decay * j) of the j-th newest chunk covering t (0 = plain mean)
    reanchor_fade_s: float = 0.3  # s over which the jump at a chunk's arrival fades out (0 = no re-anchoring)
    max_observation_age_s: float = 0.3  # s: no inference from an observation older than this
    max_chunk_age_s: float = 1.0  # s: no action from chunks whose observation is older than this
    interpolate: bool = True  # linear between chunk rows (False: each row held for action_dt)

    def __post_init__(self) -> None:
        if not math.isfinite(self.ensemble_decay):
            raise ValueError(f"ensemble_decay must be finite, got {self.ensemble_decay}")
        if self.reanchor_fade_s < 0 or self.max_observation_age_s <= 0 or self.max_chunk_age_s <= 0:
            raise ValueError("reanchor_fade_s must be >= 0 and max_observation_age_s, max_chunk_age_s > 0")


@dataclass(frozen=True)
class Verdict:
    """Outcome of an input to the runtime: ``ok`` or rejected, with the reason (for logs and diagnostics)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class ObservationWindow:
    """What ``predict`` gets: ``states`` (n_obs_steps, D), ``depths`` (n_obs_steps, H, W) or None, and the
    time ``t_obs`` of the newest row (pass it back to ``add_chunk``)."""

    states: np.ndarray
    depths: np.ndarray | None
    t_obs: float


@dataclass(frozen=True)
class ActionResult:
    """``action`` (26,) float64 policy action, or None with ``reason`` (then hold the current targets)."""

    action: np.ndarray | None
    reason: str = ""
    chunks: int = 0  # how many chunks were blended


@dataclass
class _Chunk:
    t0: float
    actions: np.ndarray  # (H, 26), clipped
    t_added: float


@dataclass
class _Anchor:
    t_start: float
    offset: np.ndarray  # (26,)


@dataclass
class _Observation:
    t: float
    state: np.ndarray
    depth: np.ndarray | None


@dataclass
class ActionChunkRuntime:
    """See the module docstring. One instance per policy and episode (``reset`` between episodes)."""

    spec: PolicySpec
    config: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        self._lo, self._hi = robot_spec.action_bounds(self.spec.hand)
        span = (self.spec.n_obs_steps - 1) * self.spec.action_dt
        self._obs_keep_s = span + self.config.max_observation_age_s + self.spec.action_dt
        self.reset()

    def reset(self) -> None:
        self._obs: deque[_Observation] = deque()
        self._chunks: list[_Chunk] = []
        self._anchors: list[_Anchor] = []
        self._next_due: float | None = None  # the grid slot of the next inference
        self._pending: float | None = None
        self.rejected = 0  # chunks rejected since reset (for diagnostics)

    # --- observations ----------------------------------------------------------------------------------

    def add_observation(self, t: float, state: np.ndarray, depth: np.ndarray | None = None) -> Verdict:
        """Store one observation (a ``policy_state`` row and, for depth policies, a policy image)."""
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (self.spec.state_dim,) or not np.isfinite(s).all():
            return Verdict(
                False,
                f"state must be {self.spec.state_dim} finite values, got shape {s.shape}"
                + ("" if s.shape != (self.spec.state_dim,) else " with NaN/inf"),
            )
        d = None
        if self.spec.uses_depth:
            assert self.spec.depth is not None
            if depth is None:
                return Verdict(False, "this policy needs a depth image with every observation")
            d = np.asarray(depth, dtype=np.float32)
            shape = (self.spec.depth.height, self.spec.depth.width)
            if d.shape != shape or not np.isfinite(d).all():
                return Verdict(False, f"depth must be a finite {shape} policy image, got {d.shape}")
        if self._obs and t < self._obs[-1].t - TIME_EPS:
            return Verdict(
                False, f"observation at t={t:.3f} is older than the last one ({self._obs[-1].t:.3f})"
            )
        self._obs.append(_Observation(float(t), s, d))
        while len(self._obs) > 1 and self._obs[1].t < t - self._obs_keep_s:
            self._obs.popleft()
        return Verdict(True)

    def observation_window(self, t: float) -> ObservationWindow | Verdict:
        """The window ending at the newest observation, or a Verdict saying why there is none."""
        if not self._obs:
            return Verdict(False, "no observation yet")
        newest = self._obs[-1]
        age = t - newest.t
        if age > self.config.max_observation_age_s + TIME_EPS:
            return Verdict(
                False, f"stale observation: {age:.3f} s old > {self.config.max_observation_age_s} s"
            )
        n, dt = self.spec.n_obs_steps, self.spec.action_dt
        rows: list[_Observation] = []
        for k in range(n - 1, -1, -1):
            target = newest.t - k * dt
            pick = self._obs[0]  # before the first observation: repeat it (start of an episode)
            for o in self._obs:
                if o.t <= target + 0.5 * dt:
                    pick = o
                else:
                    break
            rows.append(pick)
        states = np.stack([o.state for o in rows])
        depths = np.stack([o.depth for o in rows]) if self.spec.uses_depth else None  # type: ignore[misc]
        return ObservationWindow(states, depths, newest.t)

    # --- inference scheduling --------------------------------------------------------------------------

    def inference_due(self, t: float) -> bool:
        """True when a predict call should start now: its grid slot reached, none in flight, inputs fresh."""
        if self._pending is not None:
            return False
        if self._next_due is not None and t < self._next_due - DUE_SLACK * self.spec.inference_period:
            return False
        return isinstance(self.observation_window(t), ObservationWindow)

    def request_inference(self, t: float) -> ObservationWindow | None:
        """The window to run ``predict`` on, if an inference is due (it is then in flight until add_chunk
        or ``cancel_inference``)."""
        if not self.inference_due(t):
            return None
        window = self.observation_window(t)
        assert isinstance(window, ObservationWindow)
        period = self.spec.inference_period
        slot = self._next_due if self._next_due is not None else float(t)
        self._next_due = slot + period if t < slot + REPHASE_AFTER * period else float(t) + period
        self._pending = window.t_obs
        return window

    def cancel_inference(self) -> None:
        """The in-flight predict failed or was dropped; the next one may start at its normal time."""
        self._pending = None

    # --- chunks ----------------------------------------------------------------------------------------

    def add_chunk(self, actions: np.ndarray, t_obs: float, t: float) -> Verdict:
        """Accept a predicted chunk computed from the observation at ``t_obs``, arriving at time ``t``."""
        self._pending = None
        a = np.asarray(actions, dtype=np.float64)
        shape = (self.spec.action_horizon, robot_spec.ACTION_DIM)
        if a.shape != shape:
            return self._reject(f"chunk must have shape {shape}, got {a.shape}")
        if not np.isfinite(a).all():
            rows = np.flatnonzero(~np.isfinite(a).all(axis=1)).tolist()
            return self._reject(f"chunk contains NaN/inf (rows {rows[:5]})")
        if t - t_obs > self.config.max_chunk_age_s + TIME_EPS:
            return self._reject(
                f"chunk arrived {t - t_obs:.3f} s after its observation "
                f"(> max_chunk_age_s {self.config.max_chunk_age_s})"
            )
        if self._chunks and t_obs < self._chunks[-1].t0 - TIME_EPS:
            return self._reject(
                f"chunk from t_obs={t_obs:.3f} is older than the newest chunk ({self._chunks[-1].t0:.3f})"
            )
        if t >= self._end(t_obs):
            return self._reject(f"every row of the chunk is in the past (arrived {t - t_obs:.3f} s late)")
        chunk = _Chunk(float(t_obs), np.clip(a, self._lo, self._hi), float(t))
        before = self._blend(t)
        self._chunks.append(chunk)
        if before is not None and self.config.reanchor_fade_s > 0:
            after = self._blend(t)
            assert after is not None
            self._anchors.append(_Anchor(float(t), before[0] - after[0]))
        return Verdict(True)

    def _reject(self, reason: str) -> Verdict:
        self.rejected += 1
        return Verdict(False, reason)

    def _end(self, t0: float) -> float:
        """A chunk covers [t0, t0 + H * action_dt): its last row is held for one action_dt."""
        return t0 + self.spec.action_horizon * self.spec.action_dt

    def _row_at(self, chunk: _Chunk, t: float) -> np.ndarray:
        x = (t - chunk.t0) / self.spec.action_dt
        k = math.floor(x + TIME_EPS)
        k = min(max(k, 0), len(chunk.actions) - 1)
        if not self.config.interpolate or k + 1 >= len(chunk.actions):
            return chunk.actions[k]
        w = min(max(x - k, 0.0), 1.0)
        return (1.0 - w) * chunk.actions[k] + w * chunk.actions[k + 1]

    def _blend(self, t: float) -> tuple[np.ndarray, int] | None:
        """Ensemble of the chunks covering t (newest weighs most when decay > 0) plus fading anchors."""
        covering = [c for c in self._chunks if c.t0 - TIME_EPS <= t < self._end(c.t0) - TIME_EPS]
        if not covering:
            return None
        weights = np.exp(-self.config.ensemble_decay * np.arange(len(covering)))
        rows = np.stack([self._row_at(c, t) for c in reversed(covering)])  # newest first
        out = (weights[:, None] * rows).sum(axis=0) / weights.sum()
        fade = self.config.reanchor_fade_s
        for anchor in self._anchors:
            if fade > 0 and anchor.t_start - TIME_EPS <= t < anchor.t_start + fade:
                out = out + anchor.offset * (1.0 - (t - anchor.t_start) / fade)
        return out, len(covering)

    def action(self, t: float) -> ActionResult:
        """The action to command at time ``t`` (non-decreasing across calls), or None and why (hold)."""
        self._chunks = [c for c in self._chunks if self._end(c.t0) > t + TIME_EPS]
        self._anchors = [a for a in self._anchors if t < a.t_start + self.config.reanchor_fade_s]
        if not self._chunks:
            return ActionResult(None, "no action chunk covers this time (none yet, or all exhausted)")
        age = t - self._chunks[-1].t0
        if age > self.config.max_chunk_age_s + TIME_EPS:
            return ActionResult(
                None,
                f"stale: the newest chunk's observation is {age:.3f} s old "
                f"(> max_chunk_age_s {self.config.max_chunk_age_s})",
            )
        blended = self._blend(t)
        if blended is None:
            return ActionResult(None, "no action chunk covers this time (arrived chunks start later)")
        out, n = blended
        out = np.clip(out, self._lo, self._hi)
        if not np.isfinite(out).all():  # cannot happen with validated chunks; never let NaN out
            return ActionResult(None, "blended action is not finite")
        return ActionResult(out, "", n)
