"""Packaged PPO specialists as deployable policies: the reading half of ``recipe_sim.ppo.packaged``.

A packaged specialist is a folder (``recipe_sim/data/specialists/<name>/`` in the source tree) holding
``policy.ts``/``policy.onnx`` + ``policy.json`` (the exported actor), ``metadata.json`` (training record)
and ``eval.json`` (its evaluation). recipe_sim writes such folders; this module reads them without the
simulator, checks that the files describe one checkpoint, and wraps the actor as a ``DeployablePolicy``
(one observation row in, one action row out, called at the specialists' 10 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipe_common import robot_spec
from recipe_common.checkpoint_io import read_json_object
from recipe_common.observation import field_slice
from recipe_common.position_filter import ExponentialFilter, recorded_weight
from recipe_policy.exported import ExportedPolicy, load_exported_policy
from recipe_policy.interface import PolicySpec

POLICY_FILES = ("policy.ts", "policy.onnx", "policy.json")
SPECIALIST_DT = 0.1  # s: the specialists act at the env's 10 Hz policy rate
OBJECT_POS = field_slice("object_pos")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object of a package; a missing file or a non-object names the file (ValueError)."""
    return read_json_object(path, ValueError)


def check_consistent(meta: dict[str, Any], report: dict[str, Any], info: dict[str, Any], where: str) -> None:
    """metadata.json, eval.json and policy.json must come from the same checkpoint and task."""
    it = meta.get("iteration")
    if report.get("iteration") != it or info.get("iteration") != it:
        raise ValueError(
            f"{where}: metadata is iteration {it}, eval.json {report.get('iteration')}, "
            f"policy.json {info.get('iteration')}: the files come from different checkpoints"
        )
    if report.get("task") != meta.get("task") or info.get("task") != meta.get("task"):
        raise ValueError(f"{where}: task differs between metadata, eval.json and policy.json")
    if recorded_weight(info) != recorded_weight(meta):
        raise ValueError(
            f"{where}: object_pos_filter is {recorded_weight(meta)} in metadata.json but "
            f"{recorded_weight(info)} in policy.json: the actor would be fed the wrong input"
        )


@dataclass(frozen=True)
class PackagedSpecialist:
    name: str
    path: Path
    metadata: dict[str, Any]
    eval_report: dict[str, Any]

    def policy(self, fmt: str = "ts") -> ExportedPolicy:
        """The actor as TorchScript (``ts``) or ONNX (``onnx``)."""
        if fmt not in ("ts", "onnx"):
            raise ValueError(f"format must be 'ts' or 'onnx', got {fmt!r}")
        return load_exported_policy(self.path / f"policy.{fmt}")

    def success_rate(self, condition: str = "randomized") -> float | None:
        """Overall success of the packaged eval under ``condition`` (None if not evaluated)."""
        row = self.eval_report.get("conditions", {}).get(condition, {}).get("_overall")
        return None if row is None else row.get("success_rate")


def available(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def is_specialist_dir(path: Path) -> bool:
    return path.is_dir() and (path / "policy.json").is_file() and (path / "metadata.json").is_file()


def read_specialist(path: str | Path) -> PackagedSpecialist:
    """The packaged specialist in folder ``path``; checks that its files describe the same policy."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no packaged specialist folder")
    meta = read_json(path / "metadata.json")
    report = read_json(path / "eval.json")
    info = read_json(path / "policy.json")
    for f in POLICY_FILES:
        if not (path / f).is_file():
            raise FileNotFoundError(f"{path / f}: missing")
    check_consistent(meta, report, info, str(path))
    return PackagedSpecialist(path.name, path, meta, report)


def load_specialist(name: str, root: Path) -> PackagedSpecialist:
    """A packaged specialist by folder name under ``root``."""
    path = Path(root) / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"no packaged specialist {name!r} in {path.parent} (have: {available(Path(root))})"
        )
    return read_specialist(path)


def specialist_spec(info: dict[str, Any], meta: dict[str, Any] | None = None) -> PolicySpec:
    """The PolicySpec of an exported actor from its sidecar (and the package's metadata when known)."""
    meta = meta or {}
    layout = info.get("obs_layout") or meta.get("policy_obs_layout")
    if not isinstance(layout, dict) or "joint_pos" not in layout or "object_pos" not in layout:
        raise ValueError(f"policy.json has no usable obs_layout (joint_pos, object_pos[, goal]): {layout!r}")
    objects = info.get("objects") or meta.get("objects") or []
    return PolicySpec(
        kind="specialist",
        task=str(info.get("task") or meta.get("task") or ""),
        hand=str(meta.get("hand", robot_spec.DEFAULT_HAND)),
        objects=tuple(objects),
        has_goal="goal" in layout,
        uses_depth=False,
        uses_object_pos=True,
        n_obs_steps=1,
        action_horizon=1,
        action_dt=SPECIALIST_DT,
        inference_period=SPECIALIST_DT,
        depth=None,
        object_pos_filter=recorded_weight(info if "object_pos_filter" in info else meta),
    )


class SpecialistPolicy:
    """An exported specialist actor behind the DeployablePolicy interface.

    Its one piece of state is the object-position filter of ``spec.object_pos_filter`` (none at weight 0):
    ``predict`` feeds the actor the filtered position, as the env did in training, and ``reset`` restarts
    the filter at an episode's start. ``predict_batch`` takes an env's rows as they are: that env already
    applies the filter (built with ``object_pos_filter`` = the spec's weight).
    """

    def __init__(self, actor: ExportedPolicy, spec: PolicySpec, source: Path) -> None:
        if actor.obs_dim is not None and actor.obs_dim != spec.state_dim:
            raise ValueError(
                f"{source}: actor takes {actor.obs_dim} inputs but its layout says {spec.state_dim}"
            )
        self.actor = actor
        self.spec = spec
        self.source = source
        self._object_filter = ExponentialFilter(spec.object_pos_filter, rows=1)

    def predict(self, states: np.ndarray, depths: np.ndarray | None = None) -> np.ndarray:
        s, _ = self.spec.check_inputs(states, None)
        s = s.copy()
        s[:, OBJECT_POS] = self._object_filter(s[:, OBJECT_POS])
        return np.asarray(self.actor(s), dtype=np.float64).reshape(1, robot_spec.ACTION_DIM)

    def predict_batch(self, states: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, 26): many envs at once (sim collection and evaluation)."""
        return np.asarray(self.actor(np.asarray(states)), dtype=np.float64)

    def reset(self) -> None:
        self._object_filter.restart()

    def warm_up(self) -> None:
        """One call on zeros: the exported actor's first call (TorchScript profiling, ONNX allocation) is
        the slow one, and it should not be the first command of an episode."""
        self.actor(np.zeros((1, self.spec.state_dim)))
