"""Scripted human disturbances of the object, once per episode: poke, pull, push, drag (paper Fig. 6).

The paper shows its policies recovering when a person pokes the object, pulls it out of the hand, pushes it
away or drags it across the table. Table IV's random force (``randomization.ObjectForce``) is a different
thing: small random forces all episode long. Here each episode gets one deliberate disturbance of one kind,
at a random moment while the robot works (``start_s``), as a force (and for a poke a torque) on the
object's centre written into MuJoCo's ``xfrc_applied``, per policy step:

* ``poke``: a short sharp horizontal jab (0.1 s) at a point above the centre, so it also tips the object;
* ``push``: a quick shove away from the robot or sideways, 6-10 cm in 0.5 s;
* ``pull``: a tug away from the nearer palm, 8-12 cm in 0.6 s: out of the hand when it holds it;
* ``drag``: the object slid along the table (away from the robot or sideways), 10-15 cm in 1.5 s.

Push, pull and drag move the object the way a hand does, by a distance rather than with a force: at a
steady speed (distance / duration) along the table, by a force that tracks that speed once per policy step
(the velocity error over one step plus the object's sliding friction), capped at 15 m/s^2 (enough to pull
it out of a weak grasp). A fixed force would shove a slippery object off the table and not move a grippy
one; a stiff spring is unstable when the force can change only every 0.1 s. The hand acts 1 cm above the
table (a force at the centre tips a can over before it slides), so the force comes with the torque of that
lever about the centre. Never towards the robot: jammed against a hand, the tracking force would fling it.
Forces are accelerations (m/s^2) times the object's mass, so light and heavy objects are disturbed alike.

Pure numpy; ``recipe_sim.vec_env`` applies it (``RecipeVecEnv.set_disturbance``), the ``eval`` CLI runs it
as conditions (``--conditions disturbances``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("poke", "pull", "push", "drag")
CONDITIONS = tuple(f"disturb-{k}" for k in KINDS)  # evaluation conditions: the nominal sim + one disturbance
ALL = "disturbances"  # on a command line: the four conditions


def expand_conditions(names: list[str]) -> list[str]:
    """Condition names with ``disturbances`` replaced, in place, by the four ``disturb-*`` ones."""
    return list(dict.fromkeys(c for name in names for c in (CONDITIONS if name == ALL else [name])))
GRAVITY = 9.81


@dataclass(frozen=True)
class DisturbanceSpec:
    kind: str
    duration_s: float
    distance_m: tuple[float, float] = (0.0, 0.0)  # push, pull, drag: how far the object is taken
    accel: float = 0.0  # poke: m/s^2 of the jab
    lever_m: float = 0.0  # poke: height above the centre where the jab lands


SPECS: dict[str, DisturbanceSpec] = {
    "poke": DisturbanceSpec("poke", 0.1, accel=15.0, lever_m=0.03),
    "push": DisturbanceSpec("push", 0.5, (0.06, 0.10)),
    "pull": DisturbanceSpec("pull", 0.6, (0.08, 0.12)),
    "drag": DisturbanceSpec("drag", 1.5, (0.10, 0.15)),
}
START_S = (0.5, 5.0)  # when in the episode (s): from the approach to the carry
MAX_ACCEL = 15.0  # m/s^2, cap of the speed-tracking force
HAND_HEIGHT_M = 0.01  # push, pull, drag act this far above the table


class ScriptedDisturbance:
    """One disturbance of ``kind`` per episode and env; ``step`` gives the force and torque to apply."""

    def __init__(self, kind: str, n_envs: int, dt: float, rng: np.random.Generator,
                 start_s: tuple[float, float] = START_S) -> None:
        if kind not in SPECS:
            raise ValueError(f"unknown disturbance {kind!r}; known: {list(KINDS)}")
        if not 0.0 <= start_s[0] <= start_s[1]:
            raise ValueError(f"start_s must be an interval of seconds, got {start_s}")
        self.spec = SPECS[kind]
        self.n, self.dt, self.rng, self.start_s = int(n_envs), float(dt), rng, start_s
        self.start_step = np.zeros(self.n, dtype=np.int64)
        self.direction = np.zeros((self.n, 3))
        self.distance = np.zeros(self.n)
        self.velocity = np.full((self.n, 3), np.nan)  # push, pull, drag: the speed it is moved at
        self.hits = np.zeros(self.n, dtype=np.int64)  # disturbances that started (for reports and tests)
        self.started_now = np.zeros(self.n, dtype=bool)  # set by step: the disturbance began this step
        self.reset(np.arange(self.n))

    def reset(self, env_ids: np.ndarray) -> None:
        """New episodes in ``env_ids``: draw when and which way (pull's direction is taken when it starts)."""
        ids = np.asarray(env_ids, dtype=np.int64)
        k = len(ids)
        start = self.rng.uniform(*self.start_s, size=k)
        self.start_step[ids] = np.round(start / self.dt).astype(np.int64)
        angle = self.rng.uniform(-np.pi / 2, np.pi / 2, size=k)  # +x: away from the robot
        self.direction[ids] = np.stack([np.cos(angle), np.sin(angle), np.zeros(k)], axis=1)
        self.distance[ids] = self.rng.uniform(*self.spec.distance_m, size=k)
        self.velocity[ids] = np.nan

    def active(self, step: np.ndarray) -> np.ndarray:
        """(N,) bool: the disturbance acts during this policy step of each env's episode."""
        n_steps = max(1, round(self.spec.duration_s / self.dt))
        s = np.asarray(step, dtype=np.int64)
        return (s >= self.start_step) & (s < self.start_step + n_steps)

    def step(self, step: np.ndarray, obj_pos: np.ndarray, obj_vel: np.ndarray, palms: np.ndarray,
             mass: np.ndarray, friction: np.ndarray | float = 1.0,
             centre_height: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Force (N, 3) in newtons and torque (N, 3) in N m on the object for this policy step.

        ``step``: each env's policy step within its episode; ``obj_pos``/``obj_vel``: (N, 3) world;
        ``palms``: (N, 2, 3) palm centres; ``mass``: (N,) kg; ``friction``: (N,) sliding friction
        coefficient of the object; ``centre_height``: (N,) m, its centre's height above the table at rest.
        """
        sp = self.spec
        force = np.zeros((self.n, 3))
        torque = np.zeros((self.n, 3))
        on = self.active(step)
        first = on & (np.asarray(step) == self.start_step)
        self.hits += first
        self.started_now = first
        if not on.any():
            return force, torque
        m = np.asarray(mass, dtype=np.float64)[:, None]
        if sp.kind == "poke":
            force[on] = (sp.accel * m * self.direction)[on]
            torque[on] = np.cross(np.array([0.0, 0.0, sp.lever_m]), force)[on]
            return force, torque
        new = first | (on & np.isnan(self.velocity[:, 0]))
        if new.any():
            direction = self.direction[new]
            if sp.kind == "pull":  # away from the nearer palm, along the table
                p, hands = obj_pos[new], palms[new]
                nearest = np.argmin(np.linalg.norm(hands - p[:, None], axis=-1), axis=1)
                away = p - hands[np.arange(len(p)), nearest]
                away[:, 2] = 0.0
                direction = away / np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-9)
            self.velocity[new] = direction * (self.distance[new] / sp.duration_s)[:, None]
        v = np.array(obj_vel, dtype=np.float64)
        v[:, 2] = 0.0
        speed = np.linalg.norm(self.velocity, axis=1, keepdims=True)
        along = self.velocity / np.maximum(speed, 1e-9)
        mu = np.broadcast_to(np.asarray(friction, dtype=np.float64), (self.n,))[:, None]
        accel = (self.velocity - v) / self.dt + mu * GRAVITY * along
        accel[:, 2] = 0.0  # along the table: the table and gravity keep it down
        norm = np.linalg.norm(accel, axis=1, keepdims=True)
        accel *= np.minimum(1.0, MAX_ACCEL / np.maximum(norm, 1e-9))
        force[on] = (m * accel)[on]
        lever = np.zeros((self.n, 3))
        lever[:, 2] = -np.maximum(np.broadcast_to(centre_height, (self.n,)) - HAND_HEIGHT_M, 0.0)
        torque[on] = np.cross(lever, force)[on]
        return force, torque
