"""Closed-loop grasp-and-reach expert: the active hand grasps the object (config/grasps.yaml) and carries it
to the goal; it re-grasps when the object slips out or is pushed away.

Phases of the active hand (the other arm and hand hold the ready pose, as the task's idle arm does):

* ``reach``: palm to the grasp pose beside the object's *current* position (grasp offset and orientation of
  the object's grasp), hand preshaped. Arrived (palm within ``arrive_tol``): ``close``.
* ``close``: the arm holds the grasp pose latched on arrival, the hand closes. When the fingers have stopped
  (``close_steps`` at least): ``carry``. The object moving ``regrasp_distance`` from where the grasp was
  latched sends the hand back to ``reach``.
* ``carry``: palm to where it puts the object, held as it is in the hand now, at the goal; hand closed. If
  the object has moved in the hand by more than ``slip_distance`` since the hand closed (or is farther than
  ``lost_distance`` from where the grasp holds it): ``retreat``.
* ``retreat``: hand preshaped, palm straight up by ``retreat_height``; then ``pregrasp``.
* ``raise`` (the first phase, for a grasp with ``raise_first``): the palm rises that far straight up from
  where the episode found it, in the ready orientation; then ``pregrasp``. Without it the arm's joint-space
  path from the ready pose to the pregrasp point swings the straight fingers past a low object, and under
  action noise they brush it: a ball rolls away before the reach (the cage grasps).
* ``pregrasp``: palm to a point above and outside the grasp pose (the grasp's ``pregrasp`` offset, else the
  expert's); then ``reach``.

Which grasp: ``grasp`` names one of config/grasps.yaml for every object, or (default) an env whose objects are
one of config/grasps.yaml's ``object_sets`` grasps them all with that set's grasp, and otherwise each object
gets the grasp that its ``objects`` table names for it (its default otherwise). Envs whose object or
goal no grasp pose reaches hold the ready pose (``has_plan`` False).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recipe_sim.experts.base import Expert, WorldState, quat_axis_z
from recipe_sim.tasks.grasps import SideGrasp, load_grasps


class GraspTargets:
    """Palm targets of a grasp for one hand: where the palm goes for an object at ``pos`` (and its IK)."""

    def __init__(self, expert: Expert, grasp: SideGrasp) -> None:
        self.expert, self.grasp = expert, grasp
        self.rot = [grasp.rotation(side) @ expert.ik.ready_rot[k] for k, side in enumerate(("left", "right"))]
        self.offset = [grasp.offset(side) for side in ("left", "right")]

    def palm(self, side: int, obj_pos: np.ndarray, extra: np.ndarray | None = None,
             obj_quat: np.ndarray | None = None) -> np.ndarray:
        """Palm target for an object centred at ``obj_pos``; with ``obj_quat`` the offset's height is taken
        along the object's own axis (a tilted tall block is grasped at the same spot of the block)."""
        off = self.offset[side]
        if obj_quat is None:
            p = obj_pos + off
        else:
            axis = quat_axis_z(obj_quat)
            p = obj_pos + np.array([off[0], off[1], 0.0]) + off[2] * axis
        return p if extra is None else p + extra

    def arm(self, i: int, side: int, palm: np.ndarray) -> tuple[np.ndarray, bool]:
        return self.expert.ik.solve(i, side, palm, self.rot[side])


class GraspReachExpert(Expert):
    kind = "grasp_reach"
    PHASES = ("raise", "pregrasp", "reach", "close", "carry", "retreat", "no_plan")

    def __init__(
        self,
        env: Any,
        grasp: SideGrasp | str | None = None,
        arrive_tol: float = 0.012,
        close_steps: int = 4,
        regrasp_distance: float = 0.06,
        lost_distance: float = 0.05,
        slip_distance: float = 0.04,
        retreat_height: float = 0.05,
        pregrasp: tuple[float, float, float] = (0.0, 0.03, 0.05),
        arm_step: float = 0.06,
        raise_tol: float = 0.03,
        raise_steps: int = 20,
    ) -> None:
        super().__init__(env, arm_step=arm_step)
        catalog = load_grasps()
        if grasp is None:
            self.grasps = catalog.for_objects(list(env.object_names))
        else:
            g = grasp if isinstance(grasp, SideGrasp) else catalog.get(grasp)
            self.grasps = [g for _ in env.object_names]
        self._targets = {g.name: GraspTargets(self, g) for g in self.grasps}
        self.arrive_tol, self.close_steps = arrive_tol, close_steps
        self.regrasp_distance, self.lost_distance = regrasp_distance, lost_distance
        self.slip_distance, self.retreat_height = slip_distance, retreat_height
        self.pregrasp = np.asarray(pregrasp, dtype=np.float64)
        # Risen: within raise_tol of the top, or after raise_steps steps.
        self.raise_tol, self.raise_steps = raise_tol, raise_steps
        self.lift_height = float(env.task.success_params.lift_height)
        self.lift_margin = 0.015
        n = self.num_envs
        self.side = np.zeros(n, dtype=int)
        self._which = np.zeros(n, dtype=int)  # index into self.grasps (the env's object)
        self._latched_q = np.zeros((n, 7))
        self.palm_target = np.zeros((n, 3))
        self._held_offset = np.zeros((n, 3))  # palm minus object when the hand closed on it
        self._retreat_from = np.zeros((n, 3))  # where each env's active palm is headed now (world, m)
        self._latched_obj = np.zeros((n, 3))
        self._raise_to = np.zeros((n, 3))  # where the palm rises to in ``raise``

    @property
    def has_plan(self) -> np.ndarray:
        return self.phase != self.PHASES.index("no_plan")

    def _start(self, env_ids: np.ndarray, s: WorldState) -> None:
        side = self.env.task.side.numpy()
        for i in env_ids:
            self.side[i] = int(side[i])
            self._which[i] = int(self.env.models.object_id[i])
            rise = self.targets_of(i).grasp.raise_first
            self._raise_to[i] = s.palms[i, self.side[i]] + np.array([0.0, 0.0, rise])

    def targets_of(self, i: int) -> GraspTargets:
        return self._targets[self.grasps[self._which[i]].name]

    def carry_point(self, i: int, s: WorldState) -> np.ndarray:
        """Where to hold the object: the goal, raised if needed so that the object counts as lifted there
        (a low goal for a tall object lies less than the task's lift height above its rest height)."""
        p = s.goal[i].copy()
        p[2] = max(p[2], s.rest_z[i] + self.lift_height + self.lift_margin)
        return p

    def _desired(self, i: int, s: WorldState) -> np.ndarray:
        out = self.ready_q.copy()
        if self.in_phase(i, "no_plan"):
            self.set_phase(i, "pregrasp")  # try again: the object may have come into reach
        side, gt = int(self.side[i]), self.targets_of(i)
        sgn = 1.0 if side == 0 else -1.0
        obj = s.obj_pos[i]
        hand = gt.grasp.preshape
        if self.in_phase(i, "close") and np.linalg.norm(obj - self._latched_obj[i]) > self.regrasp_distance:
            self.set_phase(i, "reach")
        held = np.linalg.norm(obj - (s.palms[i, side] - gt.offset[side])) <= self.lost_distance
        if (self.PHASES[self.phase[i]] in ("raise", "pregrasp", "reach", "retreat", "no_plan") and held
                and self.finger_closure(s, i, side) >= 0.6 * float(np.mean(gt.grasp.closure[2:]))):
            # Someone else (a learner being relabelled) already holds it: carry on from there.
            self.set_phase(i, "carry")
            self._held_offset[i] = s.palms[i, side] - obj
        if self.in_phase(i, "carry"):
            # Lost: the object moved in the hand by more than slip_distance since the hand closed on it.
            slipped = np.linalg.norm((s.palms[i, side] - obj) - self._held_offset[i]) > self.slip_distance
            if slipped or not held:
                self.set_phase(i, "retreat")
                self._retreat_from[i] = s.palms[i, side] + np.array([0.0, 0.0, self.retreat_height])
        if self.in_phase(i, "retreat"):
            # Straight up with the hand opening, clear of the object, before going round to the pre-grasp.
            palm = self._aim(i, self._retreat_from[i])
            q_arm, _ = gt.arm(i, side, palm)
            if self.palm_error(s, i, side, palm) < 2 * self.arrive_tol or self.dwell[i] >= 8:
                self.set_phase(i, "pregrasp")
        if self.in_phase(i, "raise") and gt.grasp.raise_first <= 0.0:
            self.set_phase(i, "pregrasp")  # no rise and no IK solve: side grasps plan as they did before
        if self.in_phase(i, "raise"):
            palm = self._aim(i, self._raise_to[i])
            q_arm, ok = self.ik.solve(i, side, palm, self.ik.ready_rot[side])
            risen = self.palm_error(s, i, side, palm) < self.raise_tol
            if not ok or risen or self.dwell[i] >= self.raise_steps:
                self.set_phase(i, "pregrasp")
        if self.in_phase(i, "pregrasp"):
            pregrasp = self.pregrasp if gt.grasp.pregrasp is None else gt.grasp.pregrasp
            palm = self._aim(i, gt.palm(side, obj, pregrasp * np.array([1.0, sgn, 1.0])))
            q_arm, ok = gt.arm(i, side, palm)
            if self.palm_error(s, i, side, palm) < 2 * self.arrive_tol or not ok:
                self.set_phase(i, "reach")
        if self.in_phase(i, "reach"):
            palm = self._aim(i, gt.palm(side, obj))
            q_arm, ok = gt.arm(i, side, palm)
            if not ok:
                self.set_phase(i, "no_plan")
                self.hold_ready(out, side)
                return out
            err = self.palm_error(s, i, side, palm)
            # Arrived, or as near as it gets (low grasps stop short on the table, noise shakes the palm).
            if err < self.arrive_tol or (self.dwell[i] >= 8 and err < 2.5 * self.arrive_tol):
                self.set_phase(i, "close")
                self._latched_q[i], self._latched_obj[i] = q_arm, obj
        if self.in_phase(i, "close"):
            q_arm, hand = self._latched_q[i], gt.grasp.closure
            if self.dwell[i] >= self.close_steps and self.hand_speed(s, i, side) < 0.5:
                self.set_phase(i, "carry")
                self._held_offset[i] = s.palms[i, side] - obj
        if self.in_phase(i, "carry"):
            # Where the palm must be for the object, held where it is in the hand now, to be at the goal.
            palm = self._aim(i, self.carry_point(i, s) + (s.palms[i, side] - obj))
            q_arm, _ = gt.arm(i, side, palm)  # the nearest reachable pose if out of reach
            hand = gt.grasp.closure
        self.arm_move(out, s, i, side, q_arm)
        self.hand_to(out, side, hand)
        return out

    def _aim(self, i: int, palm: np.ndarray) -> np.ndarray:
        self.palm_target[i] = palm
        return palm
