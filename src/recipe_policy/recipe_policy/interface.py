"""What every deployable policy looks like to its runtime: a ``PolicySpec`` and ``predict``/``reset``.

The policy node, the sim evaluation of a generalist and the specialists' own rollouts all drive a policy
through this one interface, so the node never branches on "specialist or diffusion": it reads the spec
(which inputs, how many observation steps, how long a chunk, how often to call) and feeds ``predict``
with inputs built by the two shared functions only:

* states: ``recipe_common.observation.policy_state(q26, object_pos_world, goal_world_or_None)``, rows
  oldest first, ``spec.n_obs_steps`` of them at ``spec.action_dt`` spacing, without added noise;
* depths: ``recipe_common.policy_image.to_policy_image(frame, intrinsics, spec.depth)``, float32 metres.

``predict`` returns ``(spec.action_horizon, 26)`` float64 policy actions (7 + 7 absolute arm radians, 6 + 6
normalized hand targets), row ``k`` meant for time ``t_obs + k * spec.action_dt`` where ``t_obs`` is the
time of the newest observation row. ``recipe_policy.runtime`` turns those chunks into commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from recipe_common import robot_spec
from recipe_common.observation import policy_layout
from recipe_common.policy_image import PolicyImageSpec
from recipe_common.position_filter import check_weight

KINDS = ("specialist", "diffusion")


@dataclass(frozen=True)
class PolicySpec:
    """What a policy consumes and produces; frozen so a runtime can trust it for the policy's lifetime."""

    kind: str  # "specialist" | "diffusion"
    task: str
    hand: str
    objects: tuple[str, ...]  # catalog objects it was trained on
    has_goal: bool  # the state rows end with the 3-d goal (world frame)
    uses_depth: bool  # predict needs depths (n_obs_steps, H, W)
    uses_object_pos: bool  # the object position in the state rows is read (False: depth-only ablation)
    n_obs_steps: int  # observation rows per predict call (1 for specialists)
    action_horizon: int  # action rows per predict call (1 for specialists)
    action_dt: float  # s between consecutive rows of a chunk and of the observation window (0.1)
    inference_period: (
        float  # s between predict calls the runtime should make (0.1 specialists, 0.2 diffusion)
    )
    depth: PolicyImageSpec | None  # the depth image predict expects (None without depth)
    # Weight of the exponential filter (recipe_common.position_filter) the policy was trained to see the
    # object position through. ``predict`` applies it to the raw rows it is given (and ``reset`` restarts
    # it); a sim env serving a policy whole batches of its own rows must apply it instead (RecipeVecEnv's
    # task key ``object_pos_filter``). 0: raw positions.
    object_pos_filter: float = 0.0

    def __post_init__(self) -> None:
        check_weight(self.object_pos_filter, "PolicySpec.object_pos_filter")
        if self.kind not in KINDS:
            raise ValueError(f"PolicySpec.kind must be one of {KINDS}, got {self.kind!r}")
        robot_spec.get_hand(self.hand)
        if self.n_obs_steps < 1 or self.action_horizon < 1:
            raise ValueError(
                f"n_obs_steps and action_horizon must be >= 1, got {self.n_obs_steps}, {self.action_horizon}"
            )
        if not (self.action_dt > 0 and self.inference_period > 0):
            raise ValueError(
                f"action_dt and inference_period must be > 0, got {self.action_dt}, {self.inference_period}"
            )
        if self.uses_depth != (self.depth is not None):
            raise ValueError("PolicySpec: depth must be given exactly when uses_depth is true")

    @property
    def state_dim(self) -> int:
        """Width of one state row: 29 (joints + object) or 32 (with the goal)."""
        return sum(n for _, n in policy_layout(self.has_goal))

    @property
    def action_dim(self) -> int:
        return robot_spec.ACTION_DIM

    def check_inputs(
        self, states: np.ndarray, depths: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The inputs as float arrays of the right shapes; a clear ValueError otherwise (no NaN through)."""
        s = np.asarray(states, dtype=np.float64)
        if s.shape != (self.n_obs_steps, self.state_dim):
            raise ValueError(
                f"states must have shape (n_obs_steps={self.n_obs_steps}, {self.state_dim}) "
                f"(policy_state rows, oldest first), got {s.shape}"
            )
        if not np.isfinite(s).all():
            raise ValueError("states contain NaN or inf")
        if not self.uses_depth:
            return s, None
        assert self.depth is not None
        if depths is None:
            raise ValueError(
                f"this {self.kind} policy needs depths ({self.n_obs_steps}, "
                f"{self.depth.height}, {self.depth.width}) from to_policy_image"
            )
        d = np.asarray(depths, dtype=np.float32)
        if d.shape != (self.n_obs_steps, self.depth.height, self.depth.width):
            raise ValueError(
                f"depths must have shape ({self.n_obs_steps}, {self.depth.height}, "
                f"{self.depth.width}), got {d.shape}"
            )
        if not np.isfinite(d).all():
            raise ValueError("depths contain NaN or inf (pass frames through to_policy_image)")
        return s, d


@runtime_checkable
class DeployablePolicy(Protocol):
    """A loaded policy (``recipe_policy.loading.load_policy``)."""

    spec: PolicySpec

    def predict(self, states: np.ndarray, depths: np.ndarray | None) -> np.ndarray:
        """(n_obs_steps, D) states and (n_obs_steps, H, W) depths or None -> (action_horizon, 26) float64."""
        ...

    def reset(self) -> None:
        """Forget any internal state (call between episodes)."""
        ...

    def warm_up(self) -> None:
        """Get ready for a real-time loop (the node calls it once after loading): the first call after it
        takes the steady-state time."""
        ...
