"""Tracking MSE of K candidate parameter sets, simulated in parallel with mujoco.rollout.

One physics-only model is compiled once; every candidate is a copy of it with ``apply_params`` applied (no
recompile), so all copies share one size signature and a single ``rollout`` call simulates every
(candidate, sequence) pair on a persistent thread pool.

Timing follows the recording exactly (to one physics step): target i is the position actuators' ctrl from
the step nearest its command time until the next command, and sample i is compared with the simulated
state at that step. A live run on a busy host sends commands a few ms late now and then; replaying the
real timing keeps that jitter out of the fitted parameters. Rollouts are cut into chunks of physics steps
(state carried over) of at most ``max_steps_per_call`` physics steps over all rollouts together, so memory
stays bounded whatever the recording length and batch size, and ``should_stop`` is polled about once a
second: a cancel raises ``stopping.Cancelled`` between two chunks.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from recipe_common import robot_spec

from .recording import Recording
from .space import ParameterSpace
from .stopping import StopFn, check, never

_FULLPHYSICS = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
_QPOS_OFFSET = 1  # mjSTATE_FULLPHYSICS = [time, qpos, qvel, act, ...]
MAX_CANDIDATES_PER_CALL = 64  # candidate models built and simulated together
CONTACT_CHECK_MARGIN_M = 0.01  # 'auto' contacts: simulate contacts if a measured pose comes this close


class EvaluationError(ValueError):
    """The recording cannot be scored with this model and space (e.g. no joint to score)."""


def _import_sim() -> tuple[Any, Any, Any]:
    from recipe_sim.model.builder import apply_params, build_model
    from recipe_sim.model.params import ModelParams

    return build_model, apply_params, ModelParams


def manufacturer_params(hand: str) -> Any:
    """recipe_sim's ModelParams.defaults(hand): the manufacturer model every candidate starts from."""
    return _import_sim()[2].defaults(hand=hand)


class SimEvaluator:
    """Simulates a recording's targets under candidate parameters and scores them against its measurements."""

    def __init__(
        self,
        recording: Recording,
        space: ParameterSpace,
        *,
        threads: int = 2,
        joints: str = "all",
        time_chunk: int = 25,
        max_steps_per_call: int = 50_000,
        contacts: str = "auto",
        base_params: Any = None,
        should_stop: StopFn = never,
    ) -> None:
        build_model, apply_params, model_params = _import_sim()
        if space.hand != recording.hand:
            raise EvaluationError(f"space is for the {space.hand!r} hand, recording for {recording.hand!r}")
        self.recording = recording
        self.space = space
        self.hand = recording.hand
        self._apply_params = apply_params
        self.base_params = base_params if base_params is not None else model_params.defaults(hand=self.hand)
        space.check_against(self.base_params)
        self.model, self.index = build_model(hand=self.hand, obj=None, params=self.base_params, visual=False)
        self.timestep = float(self.model.opt.timestep)
        self.steps_per_sample = max(1, round(recording.period / self.timestep))
        self.step_of_sample = self._sample_steps(recording, self.timestep)
        self.chunk_steps = max(1, int(time_chunk)) * self.steps_per_sample
        self.max_steps_per_call = max(1, int(max_steps_per_call))
        self.should_stop = should_stop
        self.threads = max(1, int(threads))
        self._datas = [mujoco.MjData(self.model) for _ in range(self.threads)]
        self._scratch = mujoco.MjData(self.model)
        self._pool = mj_rollout.Rollout(nthread=self.threads)
        self.joint_names = robot_spec.state_joint_names(self.hand)
        self.qpos_adr = np.asarray(self.index.qpos_adr, dtype=int)
        self.actuator_ids = np.asarray(self.index.actuator_ids, dtype=int)
        if len(self.qpos_adr) != len(self.joint_names) or len(self.actuator_ids) != robot_spec.ACTION_DIM:
            raise EvaluationError(
                f"ModelIndex has {len(self.qpos_adr)} state joints / {len(self.actuator_ids)} "
                f"actuators, expected {len(self.joint_names)} / {robot_spec.ACTION_DIM}"
            )
        self.scored_joints = self._scored_joints(joints)
        self.contacts = self._use_contacts(contacts)
        if not self.contacts:
            self.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT.value
        self.sim_steps = 0  # physics steps simulated so far (budget accounting)
        self._controls = self._control_schedule(recording.targets)

    # ---- setup helpers ----
    @staticmethod
    def _sample_steps(recording: Recording, timestep: float) -> np.ndarray:
        """(N, T) physics step at which each sample is taken (its command starts), from the real times.

        Two commands within one physics step land on the same step: the later one wins, as on the robot.
        """
        rel = recording.times - recording.times[:, :1]
        return np.rint(rel / timestep).astype(np.int64)

    def _control_schedule(self, targets: np.ndarray) -> np.ndarray:
        """(N, S, nu) ctrl at every physics step: each target held from its command step to the next."""
        n = targets.shape[0]
        total = int(self.step_of_sample[:, -1].max())
        ctrl = np.zeros((n, total, self.model.nu))
        steps = np.arange(total)
        for k in range(n):
            which = np.searchsorted(self.step_of_sample[k], steps, side="right") - 1
            ctrl[k][:, self.actuator_ids] = targets[k, which]
        return ctrl

    def _scored_joints(self, joints: str) -> np.ndarray:
        if joints == "all":
            return np.arange(len(self.joint_names))
        if joints == "tuned":
            touched = set(self.space.touched_joints())
            sel = [i for i, n in enumerate(self.joint_names) if n in touched]
            if not sel:
                raise EvaluationError(
                    "evaluation.joints 'tuned' selects no joint: the chosen groups touch only "
                    "links; use 'all'"
                )
            return np.asarray(sel)
        raise EvaluationError(f"evaluation.joints must be 'all' or 'tuned', got {joints!r}")

    def _use_contacts(self, mode: str) -> bool:
        """Whether candidates simulate contacts: 'on', 'off', or 'auto' = only if the recording comes close.

        Calibration motions keep every collision geom clear of the table, the body and the other hand, so
        collision detection finds nothing and costs about a third of the simulation time. 'auto' checks
        every measured pose of the recording on the manufacturer model with a CONTACT_CHECK_MARGIN_M
        margin and keeps contacts on if any pose comes closer (e.g. a bag of some other motion).
        """
        if mode in ("on", "off"):
            return mode == "on"
        if mode != "auto":
            raise EvaluationError(f"evaluation.contacts must be 'auto', 'on' or 'off', got {mode!r}")
        model = copy.copy(self.model)
        model.geom_margin[:] = CONTACT_CHECK_MARGIN_M
        data = mujoco.MjData(model)
        poses = self.recording.measured.reshape(-1, len(self.joint_names))
        for q in poses[:: max(1, len(poses) // 4000)]:
            data.qpos[:] = model.qpos0
            data.qpos[self.qpos_adr] = q
            mujoco.mj_fwdPosition(model, data)
            if data.ncon:
                return True
        return False

    # ---- candidates ----
    def candidate_model(self, x: np.ndarray) -> mujoco.MjModel:
        """A copy of the compiled model with candidate x (space values, not unit) applied."""
        model = copy.copy(self.model)
        self._apply_params(model, self.index, self.space.to_params(x, self.base_params))
        return model

    def params_for(self, x: np.ndarray) -> Any:
        return self.space.to_params(x, self.base_params)

    def _initial_states(self, model: mujoco.MjModel, starts: np.ndarray) -> np.ndarray:
        """(n, nstate): at rest at each recorded start pose; coupled joints on this candidate's coupling."""
        data = self._scratch
        out = np.empty((len(starts), mujoco.mj_stateSize(model, _FULLPHYSICS)))
        adr = model.jnt_qposadr
        couplings = [
            (adr[model.eq_obj1id[e]], adr[model.eq_obj2id[e]], model.eq_data[e, :5])
            for e in range(model.neq)
            if model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT and model.eq_obj2id[e] >= 0
        ]
        for i, q0 in enumerate(starts):
            mujoco.mj_resetData(model, data)
            data.qpos[self.qpos_adr] = q0
            for a1, a2, coef in couplings:  # MuJoCo joint equality: y - y0 = poly(x - x0)
                x = data.qpos[a2] - model.qpos0[a2]
                data.qpos[a1] = model.qpos0[a1] + sum(c * x**p for p, c in enumerate(coef))
            mujoco.mj_getState(model, data, out[i], _FULLPHYSICS)
        return out

    def simulate_models(
        self, models: Sequence[mujoco.MjModel], sequences: Sequence[int] | None = None
    ) -> np.ndarray:
        """(K, N, T, J) simulated joint positions (state joint order) of each model on the recording."""
        seq = list(range(self.recording.num_sequences)) if sequences is None else list(sequences)
        k, n, t = len(models), len(seq), self.recording.num_samples
        start = self.recording.measured[seq, 0]
        state = np.concatenate([self._initial_states(m, start) for m in models])
        model_list = [m for m in models for _ in range(n)]
        out = np.empty((k * n, t, len(self.joint_names)))
        out[:] = state[:, None, _QPOS_OFFSET + self.qpos_adr]  # samples at step 0 stay at the start
        controls = self._controls[seq]
        sample_steps = self.step_of_sample[seq]  # (n, t)
        total = int(sample_steps[:, -1].max())
        rows = np.tile(np.arange(n), k)  # sequence of each rollout
        chunk = max(1, min(self.chunk_steps, self.max_steps_per_call // (k * n)))
        for c0 in range(0, total, chunk):
            check(self.should_stop)
            c1 = min(total, c0 + chunk)
            ctrl = np.tile(controls[:, c0:c1], (k, 1, 1))
            states, _ = self._pool.rollout(model_list, self._datas, state, ctrl)
            # samples whose step falls in (c0, c1]: the state after that many steps (step 0: the start)
            for j in range(n):
                idx = np.flatnonzero((sample_steps[j] > c0) & (sample_steps[j] <= c1))
                if idx.size:
                    r = np.flatnonzero(rows == j)  # the rollouts of sequence j, one per candidate
                    local = sample_steps[j, idx] - c0 - 1
                    out[np.ix_(r, idx)] = states[np.ix_(r, local)][..., _QPOS_OFFSET + self.qpos_adr]
            state = states[:, -1]
            self.sim_steps += k * n * (c1 - c0)
        return out.reshape(k, n, t, len(self.joint_names))

    def simulate(self, x: np.ndarray, sequences: Sequence[int] | None = None) -> np.ndarray:
        """(K, N, T, J) trajectories of candidates x (K, d) in space values.

        Candidates are built and simulated MAX_CANDIDATES_PER_CALL at a time: a batch of thousands
        would hold thousands of model copies in memory and keep a cancel waiting while they are built.
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        parts = []
        for start in range(0, len(x), MAX_CANDIDATES_PER_CALL):
            models = []
            for xi in x[start : start + MAX_CANDIDATES_PER_CALL]:
                check(self.should_stop)
                models.append(self.candidate_model(xi))
            parts.append(self.simulate_models(models, sequences))
        return np.concatenate(parts)

    def _sequences(self, sequences: Sequence[int] | None) -> list[int]:
        return list(range(self.recording.num_sequences)) if sequences is None else list(sequences)

    def errors(self, sim: np.ndarray, sequences: Sequence[int] | None = None) -> np.ndarray:
        """(K, J) MSE per joint (all joints), over samples 1.. (sample 0 is the shared start)."""
        real = self.recording.measured[self._sequences(sequences)]
        diff = sim[:, :, 1:] - real[None, :, 1:]
        err = np.mean(diff**2, axis=(1, 2))
        return np.where(np.isfinite(err), err, np.inf)

    def residuals_of(self, sim: np.ndarray, sequences: Sequence[int] | None = None) -> np.ndarray:
        """(K, m) residuals (sim - real) of simulated ``sequences``: scored joints, samples 1..,
        scaled so that sum(r^2) is the MSE over those sequences."""
        real = self.recording.measured[self._sequences(sequences)]
        diff = sim[:, :, 1:][..., self.scored_joints] - real[None, :, 1:][..., self.scored_joints]
        diff = diff.reshape(len(sim), -1)
        return diff / np.sqrt(diff.shape[1])

    def mse(self, x: np.ndarray, sequences: Sequence[int] | None = None) -> np.ndarray:
        """(K,) tracking MSE (rad^2) over the scored joints, samples and ``sequences`` (default all)."""
        per_joint = self.errors(self.simulate(x, sequences), sequences)
        return per_joint[:, self.scored_joints].mean(axis=1)

    def residuals(self, x: np.ndarray, sequences: Sequence[int] | None = None) -> np.ndarray:
        """(K, m) residuals of candidates x (space values) on ``sequences``; sum(r^2) = MSE."""
        return self.residuals_of(self.simulate(x, sequences), sequences)

    def residuals_unit(self, u: np.ndarray, sequences: Sequence[int] | None = None) -> np.ndarray:
        return self.residuals(self.space.from_unit(np.atleast_2d(u)), sequences)

    def mse_unit(self, u: np.ndarray, sequences: Sequence[int] | None = None) -> np.ndarray:
        """The search objective: MSE of candidates given in the normalized [0, 1]^d space."""
        return self.mse(self.space.from_unit(np.atleast_2d(u)), sequences)

    @property
    def policy_steps(self) -> int:
        """Simulated steps at the recording's sample (command) rate."""
        return self.sim_steps // self.steps_per_sample

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> SimEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
