"""Sim backend: the MuJoCo GR1 twin from recipe_sim, stepped in real time in its own thread.

With a hidden parameter overlay (``overlay=`` path/dict/ModelParams) the twin behaves like a
different "real" robot; the overlay's values are never logged or published, so autotune can be
tested against an unknown robot.

Threads: only the physics thread steps the twin (targets are handed over, state is cached after
each step), so control and state callbacks never wait behind a depth render, and the physics never
waits for one either: ``render_depth`` renders from the twin's own copy of the pose (SimTwin takes
the copy under its lock in microseconds and renders outside it).

Real time: the thread steps the physics so that sim time follows wall time times
``real_time_factor``. When it falls behind (the CPU is busy elsewhere) it catches up by stepping
faster, but drops time beyond ``max_lag_s`` instead of spiralling; dropped time is counted and
reported in status() as ``dropped_s``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec
from recipe_common.cameras import camera_table
from recipe_gr1_driver.backends.base import Backend, BackendStatus


def _default_twin_factory(**kwargs: Any) -> Any:
    from recipe_sim.twin import SimTwin  # imported late: MuJoCo model building is slow

    return SimTwin(**kwargs)


class SimBackend(Backend):
    name = "sim"

    def __init__(
        self,
        hand: str = robot_spec.DEFAULT_HAND,
        overlay: Any = None,
        object_name: str | None = None,
        seed: int = 0,
        real_time_factor: float = 1.0,
        render: bool = False,
        max_lag_s: float = 0.25,
        camera_size: tuple[int, int] = (0, 0),
        twin_factory: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(hand)
        if isinstance(overlay, str) and not overlay:
            overlay = None
        if isinstance(overlay, str | Path) and not Path(overlay).is_file():
            raise FileNotFoundError(f"sim overlay file not found: {overlay}")
        self._overlay = overlay
        self._object = object_name or None
        self._seed = seed
        self._rtf = float(real_time_factor)
        self._render = render
        self._camera_kwargs = ({"width": int(camera_size[0]), "height": int(camera_size[1])}
                               if all(camera_size) else {})  # (0, 0): the twin's D435 stream size
        self._max_lag = max_lag_s
        self._factory = twin_factory or _default_twin_factory
        self._twin: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        nan = np.full(len(self.state_names), np.nan)
        self._state = (nan, nan.copy(), nan.copy())
        self._pending: np.ndarray | None = None
        self.steps = 0
        self.dropped_s = 0.0
        # how far sim time trailed wall time when the physics thread woke (the age of the published state in
        # sim time): a busy process delays the thread, and a late state is a late observation for a policy
        self.lag_samples: deque[float] = deque(maxlen=2000)
        self.error = ""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._twin = self._factory(hand=self.hand, overlay=self._overlay, object_name=self._object,
                                   render=self._render, seed=self._seed)
        if list(self._twin.joint_names) != self.state_names:
            raise RuntimeError("SimTwin.joint_names does not match robot_spec.state_joint_names")
        self._cache_state()
        for camera in self.depth_cameras():
            # Make each renderer (GL context, buffers) now: creating one holds the GIL for a good part
            # of a second, which would stall the physics thread once it runs. A failure here is left
            # to the node's camera callback to report (the robot side works without cameras).
            try:
                self._twin.render_depth(camera, **self._camera_kwargs)
            except Exception:  # reported by the camera callback on its first render
                continue
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-backend", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        twin, self._twin = self._twin, None
        close = getattr(twin, "close", None)
        if callable(close):
            close()

    @property
    def twin(self) -> Any:
        """The running SimTwin (None before start/after stop): trials and tests read its ground truth."""
        return self._twin

    def _cache_state(self) -> None:
        tw = self._twin
        self._state = (np.array(tw.joint_positions(), dtype=np.float64),
                       np.array(tw.joint_velocities(), dtype=np.float64),
                       np.array(tw.joint_efforts(), dtype=np.float64))

    def _run(self) -> None:
        try:
            dt = float(self._twin.dt)
            wall0, sim0 = time.monotonic(), float(self._twin.time)
            while not self._stop.is_set():
                with self._lock:
                    pending, self._pending = self._pending, None
                    if pending is not None:
                        self._twin.set_targets(pending)
                    due = sim0 + (time.monotonic() - wall0) * self._rtf
                    lag = due - float(self._twin.time)
                    self.lag_samples.append(lag)
                    if lag > self._max_lag:
                        self.dropped_s += lag - dt
                        sim0 -= lag - dt
                        lag = dt
                    n = int(lag / dt)
                    if n > 0:
                        self._twin.step(n)
                        self.steps += n
                        self._cache_state()
                    ahead = float(self._twin.time) - (sim0 + (time.monotonic() - wall0) * self._rtf)
                self._stop.wait(max(ahead + dt, 0.0) / self._rtf)
        except Exception as exc:  # surfaced through status(); the node turns it into an e-stop
            self.error = f"sim thread died: {exc!r}"

    def lag_figures(self) -> dict[str, str]:
        """p50 / p99 / max of the sim-time lag behind wall time over the last samples (ms)."""
        lags = np.array(list(self.lag_samples))
        if not lags.size:
            return {}
        return {"lag_p50_ms": f"{1e3 * np.percentile(lags, 50):.1f}",
                "lag_p99_ms": f"{1e3 * np.percentile(lags, 99):.1f}", "lag_max_ms": f"{1e3 * lags.max():.1f}"}

    def read_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q, dq, tau = self._state
        return q.copy(), dq.copy(), tau.copy()

    def write_targets(self, q: np.ndarray) -> None:
        """Hand the targets to the physics thread, which applies them before its next step.

        Never blocks: a depth render holds the twin for tens of milliseconds, and the control
        loop must not wait for it.
        """
        q = self.check_targets(q)
        if self._thread is None:
            raise RuntimeError("sim backend not started")
        self._pending = q

    def status(self) -> BackendStatus:
        alive = self._thread is not None and self._thread.is_alive()
        ok = alive and not self.error
        msg = self.error or ("running" if alive else "not running")
        return BackendStatus(ok, msg, {
            "sim_time_s": f"{float(self._twin.time):.3f}" if self._twin is not None else "n/a",
            "steps": str(self.steps),
            "dropped_s": f"{self.dropped_s:.3f}",
            **self.lag_figures(),
            "overlay": "yes (hidden)" if self._overlay is not None else "no",
            # how far MuJoCo's soft limits let a joint pass its URDF limit (published states are
            # projected onto the limits; see recipe_sim.twin)
            "limit_penetration_max_rad": f"{getattr(self._twin, 'max_limit_penetration', 0.0):.3f}",
        })

    # DepthCameraSource
    def depth_cameras(self) -> list[str]:
        return list(camera_table()) if self._render else []

    def render_depth(self, camera: str) -> tuple[np.ndarray, dict]:
        """Depth and camera_info of one camera; does not hold the physics (see the module docstring)."""
        twin = self._twin
        if twin is None:
            raise RuntimeError("sim backend not started")
        depth = np.asarray(twin.render_depth(camera, **self._camera_kwargs), dtype=np.float32)
        info = dict(twin.camera_info(camera, **self._camera_kwargs))
        return depth, info
