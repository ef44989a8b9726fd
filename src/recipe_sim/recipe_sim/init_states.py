"""Task-aware initial states: recorded robot + object states that episodes start from.

The paper records hand (and object) poses while a person teleoperates the simulated robot "playing"
around the task for under 30 s, and samples episode starts from them; this raised the share of seeds
that learn handover from 0% to 30%. A file holds such states for one task:

* ``q`` (M, 26): actuated joint positions in robot_spec.actuated_joint_names() order, radians;
* ``object_pose`` (M, 7): object position (m, world frame) and orientation quaternion (w, x, y, z);
* ``joint_names`` (26,): the joint order, checked on load so a file can never be read in another order;
* ``task``, ``hand``, ``source`` ("human" for teleoperated recordings, "scripted" for generated ones),
  ``format`` and a free-text ``note``;
* optional ``objects`` (M,): the catalog object of each state. A state where the hand is wrapped around
  a 3 cm can is not a valid start for a 2.5 cm cube (the fingers would start inside it or miss it), so
  an env samples only states recorded with its own object when the file names objects (all states when
  none of them match).

Stored as .npz without pickled objects (np.load(allow_pickle=False) reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recipe_common import robot_spec

FORMAT = "recipe_sim/init_states/v1"
SOURCES = ("human", "scripted")


class InitStatesError(ValueError):
    """A task-aware initial-state file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class InitStates:
    task: str
    hand: str
    source: str
    q: np.ndarray  # (M, 26)
    object_pose: np.ndarray  # (M, 7)
    note: str = ""
    objects: np.ndarray | None = None  # (M,) catalog object names, or None (states fit any object)

    def __post_init__(self) -> None:
        _validate(self, "InitStates")

    def __len__(self) -> int:
        return int(self.q.shape[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp, format=np.array(FORMAT), task=np.array(self.task), hand=np.array(self.hand),
            source=np.array(self.source), note=np.array(self.note), q=self.q.astype(np.float64),
            object_pose=self.object_pose.astype(np.float64),
            joint_names=np.array(robot_spec.actuated_joint_names()),
            **({} if self.objects is None else {"objects": np.asarray(self.objects, dtype=str)}),
        )
        tmp.replace(path)  # never leave a half-written file where a good one was
        return path

    @classmethod
    def load(cls, path: str | Path, task: str | None = None) -> InitStates:
        path = Path(path)
        if not path.is_file():
            raise InitStatesError(f"{path}: no such init-states file")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as e:  # zip/npz corruption surfaces as many exception types
            raise InitStatesError(f"{path}: not a readable .npz file ({e})") from e
        missing = {"format", "task", "hand", "source", "q", "object_pose", "joint_names"} - set(data)
        if missing:
            raise InitStatesError(f"{path}: missing keys {sorted(missing)}")
        if str(data["format"]) != FORMAT:
            raise InitStatesError(f"{path}: format {data['format']!s} is not {FORMAT}")
        names = [str(n) for n in data["joint_names"]]
        if names != robot_spec.actuated_joint_names():
            raise InitStatesError(f"{path}: joint order differs from robot_spec.actuated_joint_names()")
        try:
            states = cls(task=str(data["task"]), hand=str(data["hand"]), source=str(data["source"]),
                         q=np.asarray(data["q"], np.float64),
                         object_pose=np.asarray(data["object_pose"], np.float64),
                         note=str(data.get("note", "")),
                         objects=None if "objects" not in data else np.asarray(data["objects"], dtype=str))
        except InitStatesError as e:
            raise InitStatesError(f"{path}: {e}") from e
        if task is not None and states.task != task:
            raise InitStatesError(f"{path}: states were recorded for task {states.task!r}, not {task!r}")
        return states

    def sample(
        self, rng: np.random.Generator, n: int, objects: list[str] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """n states drawn uniformly with replacement: (q (n, 26), object_pose (n, 7)).

        With ``objects`` (n,) and a file that names objects, row i comes from the states of objects[i]
        (from all states if the file has none of that object).
        """
        if objects is None or self.objects is None:
            idx = rng.integers(0, len(self), size=n)
            return self.q[idx].copy(), self.object_pose[idx].copy()
        objects = np.asarray(objects, dtype=str)
        if objects.shape != (n,):
            raise ValueError(f"objects must have shape ({n},), got {objects.shape}")
        idx = np.empty(n, dtype=int)
        for name in np.unique(objects):
            rows = np.flatnonzero(objects == name)
            pool = np.flatnonzero(self.objects == name)
            pool = pool if len(pool) else np.arange(len(self))
            idx[rows] = pool[rng.integers(0, len(pool), size=len(rows))]
        return self.q[idx].copy(), self.object_pose[idx].copy()


def _validate(s: InitStates, where: str) -> None:
    if s.source not in SOURCES:
        raise InitStatesError(f"{where}: source {s.source!r} must be one of {SOURCES}")
    robot_spec.get_hand(s.hand)
    q, pose = np.asarray(s.q), np.asarray(s.object_pose)
    if q.ndim != 2 or q.shape[1] != robot_spec.ACTION_DIM:
        raise InitStatesError(f"{where}: q must be (M, {robot_spec.ACTION_DIM}), got {q.shape}")
    if pose.shape != (q.shape[0], 7):
        raise InitStatesError(f"{where}: object_pose must be ({q.shape[0]}, 7), got {pose.shape}")
    if q.shape[0] == 0:
        raise InitStatesError(f"{where}: no states")
    if s.objects is not None and np.asarray(s.objects).shape != (q.shape[0],):
        raise InitStatesError(f"{where}: objects must be ({q.shape[0]},), got {np.asarray(s.objects).shape}")
    if not (np.isfinite(q).all() and np.isfinite(pose).all()):
        raise InitStatesError(f"{where}: q/object_pose contain NaN or inf")
    norms = np.linalg.norm(pose[:, 3:], axis=1)
    if np.any(np.abs(norms - 1.0) > 1e-3):
        raise InitStatesError(f"{where}: object quaternions must be unit length (w, x, y, z)")
    lo, hi = robot_spec.actuated_limits(s.hand)
    bad = (q < lo - 1e-3) | (q > hi + 1e-3)
    if bad.any():
        j = int(np.argwhere(bad)[0][1])
        raise InitStatesError(f"{where}: joint {robot_spec.actuated_joint_names()[j]} outside its limits")
