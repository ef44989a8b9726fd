"""Collision clearance of calibration targets, checked kinematically on the manufacturer model.

Calibration motion must not touch the table, the body or the other fingers: on the real robot that is a
safety matter, and in simulation contacts make the tracking MSE a non-smooth function of the parameters
(a 1e-3 change of a gain flips which contacts happen), which defeats any refinement. Every target pose is
placed in the model (couplings at their manufacturer k, b) and checked for geom pairs closer than a
margin. Offending sequences are shrunk towards home, limb by limb, until they are clear.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from recipe_common import robot_spec


@dataclass(frozen=True)
class Contact:
    sample: int
    body1: str
    body2: str
    distance: float


def _limb_of_body(name: str) -> str | None:
    """'left'/'right' for an arm or hand body (URDF: left_*/right_* arm links, L_*/R_* hand links)."""
    if name.startswith(("left_", "L_")):
        return "left"
    if name.startswith(("right_", "R_")):
        return "right"
    return None


class ClearanceChecker:
    """Finds target poses whose collision geoms come closer than ``margin`` metres."""

    def __init__(self, hand: str = robot_spec.DEFAULT_HAND, margin: float = 0.03) -> None:
        from recipe_sim.model.builder import build_model

        self.hand = hand
        self.margin = float(margin)
        self.model, self.index = build_model(hand=hand, obj=None, visual=False)
        self.model.geom_margin[:] = self.margin
        self.data = mujoco.MjData(self.model)
        spec = robot_spec.get_hand(hand)
        actuated = robot_spec.actuated_joint_names()
        self._coupled = []
        for side in robot_spec.SIDES:
            p = robot_spec.HAND_PREFIX[side]
            for c in spec.couplings:
                self._coupled.append((actuated.index(f"{p}_{c.actuated_suffix}_joint"), c.k, c.b))
        self._coupled_adr = np.asarray(self.index.coupled_qpos_adr)
        self._body_names = [self.model.body(i).name for i in range(self.model.nbody)]

    def contacts(self, targets: np.ndarray, stride: int = 1) -> list[Contact]:
        """Contacts closer than the margin over (T, 26) target poses (every ``stride``-th sample)."""
        m, d = self.model, self.data
        out: list[Contact] = []
        for t in range(0, len(targets), max(1, stride)):
            q = targets[t]
            d.qpos[:] = m.qpos0
            d.qpos[self.index.actuated_qpos_adr] = q
            d.qpos[self._coupled_adr] = [k * q[a] + b for a, k, b in self._coupled]
            mujoco.mj_fwdPosition(m, d)
            for c in d.contact[: d.ncon]:
                b1 = self._body_names[m.geom_bodyid[c.geom1]]
                b2 = self._body_names[m.geom_bodyid[c.geom2]]
                out.append(Contact(t, b1, b2, float(c.dist)))
        return out

    def gravity_torques(self, q26: np.ndarray) -> np.ndarray:
        """(26,) joint torques gravity exerts at actuated pose q26 (at rest, manufacturer model).

        The same kinematic model as the contact check; segments.py uses it to pick hold poses whose
        gravity load differs (so the sag g/kp can be told from a constant zero offset).
        """
        m, d = self.model, self.data
        d.qpos[:] = m.qpos0
        d.qpos[self.index.actuated_qpos_adr] = q26
        d.qpos[self._coupled_adr] = [k * q26[a] + b for a, k, b in self._coupled]
        d.qvel[:] = 0.0
        mujoco.mj_fwdPosition(m, d)
        mujoco.mj_fwdVelocity(m, d)
        return -d.qfrc_bias[self.index.actuated_dof_adr].copy()

    def shrink_until_clear(
        self, targets: np.ndarray, home: np.ndarray, factor: float = 0.8, max_rounds: int = 12
    ) -> tuple[np.ndarray, list[float]]:
        """Scale the deviation from home of the limbs (one side: arm + hand) that touch, until clear.

        Returns the cleared (T, 26) targets and the final scale of each side. Scaling towards home keeps
        the joint-limit box and the velocity bound (both convex around home).
        """
        dev = np.asarray(targets, dtype=np.float64) - home
        n_arm = robot_spec.NUM_ARM_JOINTS_PER_SIDE
        n_hand = robot_spec.NUM_HAND_ACTUATED_PER_SIDE
        side_cols = {
            "left": np.r_[0:n_arm, 2 * n_arm : 2 * n_arm + n_hand],
            "right": np.r_[n_arm : 2 * n_arm, 2 * n_arm + n_hand : 2 * n_arm + 2 * n_hand],
        }
        scale = {"left": 1.0, "right": 1.0}
        for _ in range(max_rounds):
            found = self.contacts(home + dev)
            if not found:
                return home + dev, [scale["left"], scale["right"]]
            sides = {s for c in found for s in (_limb_of_body(c.body1), _limb_of_body(c.body2)) if s}
            if not sides:
                raise RuntimeError(
                    f"contact between {found[0].body1} and {found[0].body2} involves no arm: "
                    "the home pose itself is not clear"
                )
            for s in sides:
                dev[:, side_cols[s]] *= factor
                scale[s] *= factor
        found = self.contacts(home + dev)
        if found:
            c = found[0]
            raise RuntimeError(
                f"calibration motion still brings {c.body1} within {self.margin} m of {c.body2} "
                f"at sample {c.sample} after shrinking; choose another calibration.home"
            )
        return home + dev, [scale["left"], scale["right"]]


def approach_path(
    start: np.ndarray,
    goal: np.ndarray,
    checker: ClearanceChecker | None,
    waypoints: Sequence[Mapping[str, float]],
    max_velocity: float,
    rate_hz: float,
) -> np.ndarray:
    """(M, 26) targets from ``start`` to ``goal`` that stay clear: the straight move if it is clear, else
    through the configured waypoints (each sets some joints, applied in order on top of ``start``).

    Without a checker the straight move is returned (no model to check against). Raises RuntimeError
    when neither path is clear: the robot must then be brought near home by other means.
    """
    from .calibration import ramp

    start = np.asarray(start, dtype=np.float64)
    goal = np.asarray(goal, dtype=np.float64)
    direct = ramp(start, goal, max_velocity, rate_hz)
    if checker is None or not checker.contacts(direct):
        return direct
    names = robot_spec.actuated_joint_names()
    points = [start]
    for wp in waypoints:
        q = points[-1].copy()
        for joint, value in wp.items():
            q[names.index(joint)] = value
        points.append(q)
    points.append(goal)
    path = np.concatenate([ramp(a, b, max_velocity, rate_hz) for a, b in itertools.pairwise(points)])
    found = checker.contacts(path)
    if found:
        c = found[0]
        raise RuntimeError(
            f"no clear path to the calibration start: {c.body1} comes within {checker.margin} m of {c.body2} "
            "both on the straight move and through calibration.approach_waypoints"
        )
    return path
