"""Closed-loop handover expert, both directions: A grasps the block's upper half and carries it to the
transfer point, B grasps its lower half, A lets go and withdraws, B carries it to the final goal.

Phases (per env; A and B from the task's ``side_a``):

* ``a_pregrasp``, ``a_reach``, ``a_close``: hand A's side grasp (``handover_upper`` of config/grasps.yaml) of
  the block where it is now, as in the grasp_reach expert; B holds the ready pose.
* ``a_carry``: A carries the block to the transfer point. Arrived (block within ``transfer_tol`` of it, or
  the task's stage says the transfer happened): ``b_pregrasp``.
* ``b_pregrasp``, ``b_reach``, ``b_close``: A holds the block at the transfer point while B grasps its lower
  half (``handover_lower``), following the block.
* ``a_release``: A opens (B holds); after ``release_steps``: ``b_carry``.
* ``b_carry``: B carries the block to the final goal (raised if needed so that it counts as lifted); A goes
  back to the ready pose.

Recovery: whichever hand is meant to hold the block and no longer does (the block farther than
``lost_distance`` from where that hand's grasp holds it) opens; if the task's transfer stage is already done
and the block lies on B's side, B picks it up (``b_pregrasp``), otherwise A starts over (``a_pregrasp``).

``memoryless=True``: the phase is recomputed every step from what the state shows (which hand grips the
block, whether the transfer happened, where the palm is against the grasp's approach corridor, how far the
fingers have closed), with no dwell counters and no latched targets. The phase machine above gives a state
a label that depends on how the episode got there (a palm at the block that skipped the pregrasp point is
sent back to it; a close lasts ``close_steps``), which a memoryless policy cannot imitate and which
contradicts itself when DAgger relabels a learner's states. Here two episodes in the same state get the
same phase and so the same targets (up to the IK's warm start). Measured: as successful as the phase machine,
and its clone and DAgger are no better (docs/specialists.md), so it is off by default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recipe_sim.experts.base import Expert, WorldState
from recipe_sim.experts.grasp_reach import GraspTargets
from recipe_sim.success import HANDOVER_TRANSFER_DONE
from recipe_sim.tasks.grasps import load_grasps

_A_HOLDS = ("a_carry", "b_pregrasp", "b_reach", "b_close")  # phases in which hand A holds the block


class HandoverExpert(Expert):
    kind = "handover"
    PHASES = ("a_pregrasp", "a_reach", "a_close", "a_carry", "b_pregrasp", "b_reach", "b_close",
              "a_release", "b_carry")

    def __init__(
        self,
        env: Any,
        grasp_a: str = "handover_upper",
        grasp_b: str = "handover_lower",
        arrive_tol: float = 0.012,
        close_steps: int = 4,
        release_steps: int = 3,
        transfer_tol: float = 0.02,
        lost_distance: float = 0.06,
        pregrasp: tuple[float, float, float] = (0.0, 0.03, 0.05),
        lift_margin: float = 0.015,
        arm_step: float = 0.06,
        memoryless: bool = False,
        settled_speed: float = 0.15,
    ) -> None:
        super().__init__(env, arm_step=arm_step)
        catalog = load_grasps()
        self.ga = GraspTargets(self, catalog.get(grasp_a))
        self.gb = GraspTargets(self, catalog.get(grasp_b))
        self.arrive_tol, self.close_steps, self.release_steps = arrive_tol, close_steps, release_steps
        self.transfer_tol, self.lost_distance = transfer_tol, lost_distance
        self.pregrasp = np.asarray(pregrasp, dtype=np.float64)
        self.lift_height = float(env.task.success_params.lift_height)
        self.lift_margin = lift_margin
        n = self.num_envs
        self.side_a = np.zeros(n, dtype=int)
        self._latched = np.zeros((n, 7))
        self._pickup = np.zeros(n, dtype=bool)  # B picks a dropped block up from the table (after transfer)
        self.memoryless, self.settled_speed = bool(memoryless), float(settled_speed)

    def _start(self, env_ids: np.ndarray, s: WorldState) -> None:
        self.side_a[env_ids] = self.env.task.side_a.numpy()[env_ids]
        self._pickup[env_ids] = False

    def _lifted_point(self, p: np.ndarray, s: WorldState, i: int) -> np.ndarray:
        out = p.copy()
        out[2] = max(out[2], s.rest_z[i] + self.lift_height + self.lift_margin)
        return out

    def _side(self, i: int, who: str) -> tuple[int, GraspTargets]:
        """Hand ``who`` ('a' or 'b') of env ``i``: its side index and its grasp."""
        a = int(self.side_a[i])
        return (a, self.ga) if who == "a" else (1 - a, self.gb)

    def _pregrasp_offset(self, side: int) -> np.ndarray:
        """Where the palm waits before the reach, from the grasp point (y mirrored for the right hand)."""
        return self.pregrasp * np.array([1.0, 1.0 if side == 0 else -1.0, 1.0])

    def _transfer_point(self, i: int, s: WorldState) -> np.ndarray:
        """The block's transfer goal, raised if needed so that it counts as lifted."""
        return self._lifted_point(self.env.task.transfer_goal[i].numpy().astype(np.float64), s, i)

    def _at_transfer(self, i: int, s: WorldState, transferred: bool) -> bool:
        """The transfer happened (the task's stage), or the block is within ``transfer_tol`` of its point."""
        dist = float(np.linalg.norm(s.obj_pos[i] - self._transfer_point(i, s)))
        return transferred or dist < self.transfer_tol

    def _carry_a(self, out: np.ndarray, s: WorldState, i: int) -> None:
        """a_carry: A carries the block, held as it is in the hand, to the transfer point."""
        a = int(self.side_a[i])
        q_arm, _ = self.ga.arm(i, a, self._transfer_point(i, s) + (s.palms[i, a] - s.obj_pos[i]))
        self.arm_move(out, s, i, a, q_arm)
        self.hand_to(out, a, self.ga.grasp.closure)

    def _grasp_phase(self, i: int, s: WorldState, out: np.ndarray, who: str) -> None:
        """pregrasp -> reach -> close of hand ``who`` ('a' or 'b') on the block where it is now."""
        side, gt = self._side(i, who)
        obj = s.obj_pos[i]
        hand = gt.grasp.preshape
        quat = s.obj_quat[i]
        if self.in_phase(i, f"{who}_pregrasp"):
            palm = gt.palm(side, obj, self._pregrasp_offset(side), quat)
            q_arm, ok = gt.arm(i, side, palm)
            if self.palm_error(s, i, side, palm) < 2 * self.arrive_tol or not ok:
                self.set_phase(i, f"{who}_reach")
        if self.in_phase(i, f"{who}_reach"):
            palm = gt.palm(side, obj, None, quat)
            q_arm, _ = gt.arm(i, side, palm)
            err = self.palm_error(s, i, side, palm)
            # Arrived, or as near as it gets (the action noise shakes the palm by about a centimetre).
            if err < self.arrive_tol or (self.dwell[i] >= 8 and err < 2.5 * self.arrive_tol):
                self.set_phase(i, f"{who}_close")
                self._latched[i] = q_arm
        if self.in_phase(i, f"{who}_close"):
            q_arm, hand = self._latched[i], gt.grasp.closure
            if self.dwell[i] >= self.close_steps and self.hand_speed(s, i, side) < 0.5:
                self.set_phase(i, "a_carry" if who == "a" else "a_release")
        self.arm_move(out, s, i, side, q_arm)
        self.hand_to(out, side, hand)

    def _holds(self, i: int, s: WorldState, who: str) -> bool:
        side, gt = self._side(i, who)
        return bool(np.linalg.norm(s.obj_pos[i] - (s.palms[i, side] - gt.offset[side])) <= self.lost_distance)

    def _grips(self, i: int, s: WorldState, who: str) -> bool:
        """Hand ``who`` holds the block with its fingers closed."""
        side, gt = self._side(i, who)
        closed = self.finger_closure(s, i, side) >= 0.6 * float(np.mean(gt.grasp.closure[2:]))
        return closed and self._holds(i, s, who)

    def _desired(self, i: int, s: WorldState) -> np.ndarray:
        if self.memoryless:
            return self._desired_from_state(i, s)
        out = self.ready_q.copy()
        task = self.env.task
        a = int(self.side_a[i])
        b = 1 - a
        phase = self.PHASES[self.phase[i]]
        transferred = int(task.progress[i]) >= HANDOVER_TRANSFER_DONE
        # Skip ahead when the state is already further on (a learner being relabelled got there its own way).
        if phase in ("a_pregrasp", "a_reach") and self._grips(i, s, "a"):
            self.set_phase(i, "a_carry")
            phase = "a_carry"
        if phase in ("b_pregrasp", "b_reach") and self._grips(i, s, "b"):
            self.set_phase(i, "a_release" if self._holds(i, s, "a") else "b_carry")
            phase = self.PHASES[self.phase[i]]
        # Recovery: the hand meant to hold the block lost it.
        who = "b" if phase == "b_carry" else ("a" if phase in _A_HOLDS and not self._pickup[i] else None)
        if who is not None and not self._holds(i, s, who):
            self._pickup[i] = transferred and who == "b"
            self.set_phase(i, "b_pregrasp" if self._pickup[i] else "a_pregrasp")
            phase = self.PHASES[self.phase[i]]
        if phase in ("a_pregrasp", "a_reach", "a_close"):
            self._grasp_phase(i, s, out, "a")
            return out
        if phase == "a_carry":
            self._carry_a(out, s, i)
            if not self._at_transfer(i, s, transferred):
                return out
            self.set_phase(i, "b_pregrasp")
            phase = "b_pregrasp"
        if phase in ("b_pregrasp", "b_reach", "b_close"):
            if self._pickup[i]:  # B picks the block up from the table; A keeps clear
                self.hand_to(out, a, 0.0)
            else:  # A holds still at the transfer point while B grasps
                self.arm_move(out, s, i, a, self._latched_a(i, s, a))
                self.hand_to(out, a, self.ga.grasp.closure)
            self._grasp_phase(i, s, out, "b")
            if not self.in_phase(i, "a_release"):
                return out
            if self._pickup[i]:
                self.set_phase(i, "b_carry")
            phase = self.PHASES[self.phase[i]]
        if phase == "a_release":
            self.arm_move(out, s, i, b, self._latched[i])
            self.hand_to(out, b, self.gb.grasp.closure)
            self.arm_move(out, s, i, a, self._latched_a(i, s, a))
            self.hand_to(out, a, 0.0)
            if self.dwell[i] < self.release_steps:
                return out
            self.set_phase(i, "b_carry")
        self._carry_b(out, s, i)  # b_carry
        return out

    def _carry_b(self, out: np.ndarray, s: WorldState, i: int) -> None:
        """b_carry: B carries the block, held as it is, to the final goal; A goes back to the ready pose."""
        a = int(self.side_a[i])
        b = 1 - a
        goal = self._lifted_point(self.env.task.final_goal[i].numpy().astype(np.float64), s, i)
        q_arm, _ = self.gb.arm(i, b, goal + (s.palms[i, b] - s.obj_pos[i]))
        self.arm_move(out, s, i, b, q_arm)
        self.hand_to(out, b, self.gb.grasp.closure)
        self.arm_move(out, s, i, a, self.ready_q[a * 7 : (a + 1) * 7])
        self.hand_to(out, a, 0.0)

    def _latched_a(self, i: int, s: WorldState, a: int) -> np.ndarray:
        """A's arm at the transfer point (its IK answer, cached per env)."""
        q_arm, _ = self.ga.arm(i, a, self.ga.palm(a, self._transfer_point(i, s)))
        return q_arm

    # --- memoryless mode: the phase is a function of the state ----------------------------------------

    def _grasp_stage(self, i: int, s: WorldState, who: str) -> str:
        """pregrasp, reach or close of hand ``who``, from where its palm is and how far its fingers closed.

        close: the palm is within ``arrive_tol`` of the grasp point (1.5 times that once the arm has stopped),
        or the fingers have begun to close and it is within ``lost_distance``; reach: the palm is within 3
        ``arrive_tol`` of the straight segment from the pregrasp point to the grasp point (the path the phase
        machine's reach takes); else pregrasp."""
        side, gt = self._side(i, who)
        grasp = gt.palm(side, s.obj_pos[i], None, s.obj_quat[i])
        err = self.palm_error(s, i, side, grasp)
        closing = self.finger_closure(s, i, side) >= 0.25 * float(np.mean(gt.grasp.closure[2:]))
        # Arrived, or as near as it gets and the arm has stopped (action noise shakes the palm by ~1 cm).
        settled = err < 1.5 * self.arrive_tol and self.arm_speed(s, i, side) < self.settled_speed
        if err < self.arrive_tol or settled or (closing and err < self.lost_distance):
            return f"{who}_close"
        start = gt.palm(side, s.obj_pos[i], self._pregrasp_offset(side), s.obj_quat[i])
        seg = grasp - start
        t = np.dot(s.palms[i, side] - start, seg) / max(float(np.dot(seg, seg)), 1e-9)
        t = float(np.clip(t, 0.0, 1.0))
        if np.linalg.norm(s.palms[i, side] - (start + t * seg)) < 3.0 * self.arrive_tol:
            return f"{who}_reach"
        return f"{who}_pregrasp"

    def _phase_from_state(self, i: int, s: WorldState) -> str:
        a_grips, b_grips = self._grips(i, s, "a"), self._grips(i, s, "b")
        a, b = self._side(i, "a")[0], self._side(i, "b")[0]
        transferred = int(self.env.task.progress[i]) >= HANDOVER_TRANSFER_DONE
        if b_grips:
            if a_grips and self.hand_speed(s, i, b) >= 0.5:
                return "b_close"
            # A opens fully before either arm moves (its fingers would drag the block out of B's grip).
            a_open = self.finger_closure(s, i, a) < 0.2 * float(np.mean(self.ga.grasp.closure[2:]))
            return "b_carry" if a_open else "a_release"
        if a_grips:
            resting = s.obj_pos[i, 2] < s.rest_z[i] + 0.01
            if resting and self.hand_speed(s, i, a) >= 0.5:
                return "a_close"
            if self._at_transfer(i, s, transferred):
                return self._grasp_stage(i, s, "b")
            return "a_carry"
        return self._grasp_stage(i, s, "b" if transferred else "a")

    def _desired_from_state(self, i: int, s: WorldState) -> np.ndarray:
        out = self.ready_q.copy()
        phase = self._phase_from_state(i, s)
        self.set_phase(i, phase)
        a, b = self._side(i, "a")[0], self._side(i, "b")[0]
        if phase == "a_carry":
            self._carry_a(out, s, i)
            return out
        if phase == "b_carry":
            self._carry_b(out, s, i)
            return out
        if phase == "a_release":
            q_b, _ = self.gb.arm(i, b, self.gb.palm(b, s.obj_pos[i], None, s.obj_quat[i]))
            self.arm_move(out, s, i, b, q_b)
            self.hand_to(out, b, self.gb.grasp.closure)
            self.arm_move(out, s, i, a, self._latched_a(i, s, a))
            self.hand_to(out, a, 0.0)
            return out
        who, stage = phase.split("_")
        if who == "b":
            if self._grips(i, s, "a"):  # A holds still at the transfer point while B grasps
                self.arm_move(out, s, i, a, self._latched_a(i, s, a))
                self.hand_to(out, a, self.ga.grasp.closure)
            else:  # B picks the block up from the table; A keeps clear
                self.hand_to(out, a, 0.0)
        side, gt = self._side(i, who)
        extra = self._pregrasp_offset(side) if stage == "pregrasp" else None
        q_arm, _ = gt.arm(i, side, gt.palm(side, s.obj_pos[i], extra, s.obj_quat[i]))
        self.arm_move(out, s, i, side, q_arm)
        self.hand_to(out, side, gt.grasp.closure if stage == "close" else gt.grasp.preshape)
        return out
