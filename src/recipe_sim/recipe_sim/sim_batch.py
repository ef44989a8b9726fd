"""N MuJoCo worlds stepped together with ``mujoco.rollout`` (C++ thread pool, GIL released).

Each env owns an MjModel copy (so domain randomization can write its masses, frictions, gains and
object shape) and a row of a state matrix; ``mujoco.rollout`` steps all rows with ``num_threads``
scratch MjData. Measured on 2 cores (see benchmarks/bench_env.py): rollout beats Python threads over
``mj_step``, because ``mj_step`` keeps the GIL in the Python bindings, so two Python threads run one
at a time.

Fingertip and palm positions come back as ``framepos`` sensors that ``physics_template`` adds to the
model, so no Python loop over envs is needed to read them. MuJoCo evaluates position sensors at the
start of a step, so after ``step`` they describe the state one physics substep (1/120 s) before the
returned state; ``refresh_sensors`` computes them exactly (used after resets).

Determinism: rollout zeroes the solver warm start of every env at the start of every call and sets
the full physics state, so the result does not depend on which thread ran which env.
A diverged env: MuJoCo's own bad-state check resets that env's MjData to qpos0 at time 0 and stops
its rollout; ``step`` reports such envs (``diverged``) by their clock going backwards, and also
flags any non-finite state, so the env layer can reset them and count a failure.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import mujoco
import numpy as np
from mujoco import rollout

from recipe_common import robot_spec
from recipe_sim.model import builder
from recipe_sim.model.builder import FINGERTIP_FINGERS, ModelIndex
from recipe_sim.model.params import ModelParams
from recipe_sim.objects import ObjectSpec

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS
CONTROL_SPEC = int(mujoco.mjtState.mjSTATE_CTRL) | int(mujoco.mjtState.mjSTATE_XFRC_APPLIED)


@dataclass(frozen=True)
class PhysicsTemplate:
    """A compiled physics-only model of the scene with one catalog object, plus sensor addresses."""

    model: mujoco.MjModel
    index: ModelIndex
    tip_sensor_adr: np.ndarray  # (2, 4) sensordata address of each fingertip framepos
    palm_sensor_adr: np.ndarray  # (2,)


def _params_key(params: ModelParams | None) -> str:
    return "" if params is None else json.dumps(params.to_dict(), sort_keys=True)


_TEMPLATES: dict[tuple[str, ObjectSpec, str], PhysicsTemplate] = {}
_MAX_TEMPLATES = 64


def physics_template(hand: str, obj: ObjectSpec, params: ModelParams | None = None) -> PhysicsTemplate:
    """Cached compiled template (visual=False) for one object; callers must copy before editing."""
    key = (hand, obj, _params_key(params))
    if key not in _TEMPLATES:
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.pop(next(iter(_TEMPLATES)))
        _TEMPLATES[key] = _build_template(hand, obj, params)
    return _TEMPLATES[key]


def _build_template(hand: str, obj: ObjectSpec, params: ModelParams | None) -> PhysicsTemplate:
    spec = builder.build_spec(hand, obj, visual=False)
    names: list[str] = []
    for side in robot_spec.SIDES:
        names += [f"{side}_{finger}_tip" for finger in FINGERTIP_FINGERS]
    names += [f"{side}_palm" for side in robot_spec.SIDES]
    for name in names:
        spec.add_sensor(
            name=f"pos_{name}",
            type=mujoco.mjtSensor.mjSENS_FRAMEPOS,
            objtype=mujoco.mjtObj.mjOBJ_SITE,
            objname=name,
        )
    model = spec.compile()
    # builder has no public "index an edited spec" entry point; _make_index is what build_model uses.
    index = builder._make_index(model, hand, obj)
    builder.apply_params(model, index, params)
    site_ids = np.concatenate([index.fingertip_sites.reshape(-1), index.palm_sites])
    ids = np.array([model.sensor(f"pos_{name}").id for name in names])  # after the builder's own sensors
    if not np.array_equal(model.sensor_objid[ids], site_ids):
        raise RuntimeError("fingertip/palm sensors do not match the ModelIndex sites (site naming changed?)")
    adr = model.sensor_adr[ids].copy()
    return PhysicsTemplate(
        model=model, index=index, tip_sensor_adr=adr[:8].reshape(2, 4), palm_sensor_adr=adr[8:10]
    )


class BatchedPhysics:
    """The state of N worlds as one (N, nstate) matrix, stepped by ``mujoco.rollout``."""

    def __init__(self, models: list[mujoco.MjModel], template: PhysicsTemplate, num_threads: int = 2) -> None:
        if not models:
            raise ValueError("BatchedPhysics needs at least one model")
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.models = models
        self.template = template
        self.num_envs = len(models)
        self.num_threads = num_threads
        m = models[0]
        self.nq, self.nv, self.nu, self.nbody = m.nq, m.nv, m.nu, m.nbody
        self.nstate = mujoco.mj_stateSize(m, STATE_SPEC)
        self.state = np.zeros((self.num_envs, self.nstate))
        self.sensordata = np.zeros((self.num_envs, m.nsensordata))
        self.ctrl = np.zeros((self.num_envs, self.nu))
        self.xfrc = np.zeros((self.num_envs, self.nbody, 6))
        self._datas = [mujoco.MjData(m) for _ in range(num_threads)]
        self._scratch = mujoco.MjData(m)
        self._out_state: np.ndarray | None = None
        self._out_sens: np.ndarray | None = None
        self._checked = False
        for i in range(self.num_envs):
            mujoco.mj_getState(models[i], self._scratch, self.state[i], STATE_SPEC)

    # --- state views (writable) ----------------------------------------------------------------------

    @property
    def time(self) -> np.ndarray:
        return self.state[:, 0]

    @property
    def qpos(self) -> np.ndarray:
        return self.state[:, 1 : 1 + self.nq]

    @property
    def qvel(self) -> np.ndarray:
        return self.state[:, 1 + self.nq : 1 + self.nq + self.nv]

    def tips(self) -> np.ndarray:
        """(N, 2, 4, 3) fingertip positions [left/right] x [thumb, index, middle, ring]."""
        adr = self.template.tip_sensor_adr.reshape(-1)
        return self.sensordata[:, adr[:, None] + np.arange(3)].reshape(self.num_envs, 2, 4, 3)

    def palms(self) -> np.ndarray:
        """(N, 2, 3) palm site positions [left/right]."""
        adr = self.template.palm_sensor_adr
        return self.sensordata[:, adr[:, None] + np.arange(3)]

    def hands_touching(self) -> np.ndarray:
        """(N, 2) bool [left/right]: the hand touches the object (the builder's contact sensors; a physics
        template always has an object)."""
        return self.sensordata[:, self.template.index.hand_touch_adr] > 0

    # --- stepping ------------------------------------------------------------------------------------

    def step(self, nstep: int, ctrl_steps: np.ndarray | None = None) -> np.ndarray:
        """Advance every env by ``nstep`` physics steps with the current ctrl/xfrc; returns the (N,) bool
        mask of envs that diverged (MuJoCo reset them, or their state is not finite).

        ``ctrl_steps`` (N, nstep, nu): a control for each of the steps instead of the current one (a
        command path's output per substep); ``ctrl`` then holds the last. One ``mujoco.rollout`` call either
        way: each call starts the constraint solver cold, so splitting a period into calls of one step
        would change the trajectory at the solver's tolerance, and a policy on a knife edge with it.
        """
        if nstep < 1:
            raise ValueError(f"nstep must be >= 1, got {nstep}")
        n = self.num_envs
        if self._out_state is None or self._out_state.shape[1] != nstep:
            self._out_state = np.empty((n, nstep, self.nstate))
            self._out_sens = np.empty((n, nstep, self.sensordata.shape[1]))
        if ctrl_steps is None:
            ctrl_steps = np.broadcast_to(self.ctrl[:, None, :], (n, nstep, self.nu))
        else:
            ctrl_steps = np.asarray(ctrl_steps, dtype=np.float64)
            if ctrl_steps.shape != (n, nstep, self.nu):
                raise ValueError(f"ctrl_steps has shape {ctrl_steps.shape}, expected {(n, nstep, self.nu)}")
            self.ctrl[:] = ctrl_steps[:, -1]
        xfrc = np.broadcast_to(self.xfrc.reshape(n, 1, -1), (n, nstep, self.xfrc[0].size))
        control = np.ascontiguousarray(np.concatenate([ctrl_steps, xfrc], axis=2))
        t_expected = self.time + nstep * np.array([m.opt.timestep for m in self.models])
        rollout.rollout(
            self.models,
            self._datas,
            self.state,
            control,
            control_spec=CONTROL_SPEC,
            nstep=nstep,
            state=self._out_state,
            sensordata=self._out_sens,
            persistent_pool=True,
            skip_checks=self._checked,
        )
        self._checked = True
        self.state[:] = self._out_state[:, -1]
        self.sensordata[:] = self._out_sens[:, -1]
        clock_wrong = np.abs(self.time - t_expected) > 1e-6 * np.maximum(1.0, np.abs(t_expected))
        return clock_wrong | ~np.isfinite(self.state).all(axis=1) | ~np.isfinite(self.sensordata).all(axis=1)

    def refresh_sensors(self, env_ids: np.ndarray) -> None:
        """Recompute sensors of some envs from their current state exactly (e.g. after a reset)."""
        d = self._scratch
        for i in np.asarray(env_ids, dtype=int):
            m = self.models[i]
            mujoco.mj_setState(m, d, self.state[i], STATE_SPEC)
            mujoco.mj_forward(m, d)
            self.sensordata[i] = d.sensordata

    def scratch_data(self, env_id: int) -> mujoco.MjData:
        """A scratch MjData holding env ``env_id``'s state with positions computed (kinematics + cameras).

        The same object is reused by the next call: copy what you need before calling again.
        """
        d = self._scratch
        m = self.models[env_id]
        mujoco.mj_setState(m, d, self.state[env_id], STATE_SPEC)
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)
        return d


def copy_model(model: mujoco.MjModel) -> mujoco.MjModel:
    return copy.deepcopy(model)
