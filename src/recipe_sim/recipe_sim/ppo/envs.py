"""From CLI choices to RecipeVecEnv arguments: object groups, randomization, overlay, init states.

Kept apart from the CLIs so train, eval and the learning benchmark resolve "--group shape --subtask 1"
or "--task-aware-init" the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_common.position_filter import recorded_weight
from recipe_sim.objects import load_catalog
from recipe_sim.randomization import RandomizationConfig

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PACKAGED_INIT_STATES = PACKAGE_DIR / "data" / "init_states"


@dataclass(frozen=True)
class SubTask:
    """One specialist's share of the work: a task on one group of objects."""

    task: str
    grouping: str
    index: int  # group index within the grouping
    objects: tuple[str, ...]

    @property
    def label(self) -> str:
        """e.g. ``shape[1]``; single groupings read ``single:can_small``."""
        if self.grouping.startswith("single:"):
            return self.grouping
        return f"{self.grouping}[{self.index}]"

    @property
    def slug(self) -> str:
        """File-system friendly label: ``shape_1``, ``single_can_small``."""
        return self.label.replace(":", "_").replace("[", "_").replace("]", "")


def task_kind_and_group(task: str) -> tuple[str, str]:
    """The task's kind and default object grouping from config/tasks.yaml."""
    from recipe_sim.tasks.config import load_task_configs

    cfg = load_task_configs().get(task)
    return cfg.kind, cfg.object_group


def resolve_subtasks(task: str, grouping: str | None, subtask: int | None = None) -> list[SubTask]:
    """Groups of a grouping (``all``, ``shape``, ``mix``, ``single``, ``single:<name>`` or a task grouping).

    ``grouping`` None uses the task's own grouping from tasks.yaml; ``subtask`` picks one group.
    """
    _, default_group = task_kind_and_group(task)
    grouping = grouping or default_group
    groups = load_catalog().group(grouping)
    subtasks = [SubTask(task, grouping, i, tuple(g)) for i, g in enumerate(groups)]
    if subtask is None:
        return subtasks
    if not 0 <= subtask < len(subtasks):
        raise ValueError(
            f"--subtask {subtask}: grouping {grouping!r} has {len(subtasks)} group(s) "
            f"(0..{len(subtasks) - 1})"
        )
    return [subtasks[subtask]]


def resolve_init_states(task: str, enabled: bool | None, path: str | Path | None) -> tuple[Path | None, bool]:
    """The init-states file to use and whether task-aware init is forced off.

    ``path`` wins (and implies enabled); ``enabled`` True takes tasks.yaml's ``init_states`` or else the
    packaged scripted states of the task's kind; False forces none even if tasks.yaml names one; None
    leaves tasks.yaml in charge.
    """
    if path is not None:
        if enabled is False:
            raise ValueError("--init-states contradicts --no-task-aware-init")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"--init-states {path}: no such file")
        return path, False
    if enabled is None:
        return None, False
    if not enabled:
        return None, True
    from recipe_sim.tasks.config import load_task_configs

    cfg = load_task_configs().get(task)
    if cfg.init_states is not None:
        return cfg.init_states, False
    packaged = PACKAGED_INIT_STATES / f"{cfg.kind}_scripted.npz"
    if not packaged.is_file():
        raise FileNotFoundError(
            f"task-aware init for {task!r}: tasks.yaml names no init_states and "
            f"{packaged} does not exist; pass --init-states PATH"
        )
    return packaged, False


def recorded_init_states(meta: dict[str, Any]) -> Path | None:
    """The init-states file a checkpoint was trained with, found again on this machine.

    Metadata stores the path used at training time; a checkpoint copied to another checkout (the
    committed specialist) falls back to the packaged file of the same name.
    """
    recorded = meta.get("init_states")
    if not recorded:
        return None
    path = Path(recorded)
    if path.is_file():
        return path
    packaged = PACKAGED_INIT_STATES / path.name
    if packaged.is_file():
        return packaged
    raise FileNotFoundError(f"checkpoint was trained with init states {recorded}, not found on this machine")


def recorded_task_overrides(meta: dict[str, Any]) -> dict[str, Any]:
    """The tasks.yaml keys a checkpoint's env ran with: its recorded overrides plus the object-position
    filter it was trained behind (0 for checkpoints from before the filter was recorded), so that editing
    tasks.yaml never changes what a trained actor sees in evaluation or distillation."""
    return {**(meta.get("task_overrides") or {}), "object_pos_filter": recorded_weight(meta)}


def randomization_config(
    enabled: bool, force: bool | None = None, path: str | Path | None = None
) -> RandomizationConfig:
    """Table IV (config/randomization.yaml, or the YAML at ``path``) or all off; ``force`` toggles only
    the random push. Items a ``path`` file leaves out keep the paper's values."""
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"randomization file {path}: no such file")
    cfg = RandomizationConfig.load(path) if enabled else RandomizationConfig.disabled()
    if force is not None:
        from dataclasses import replace

        if force and not enabled:
            # Pushes without the rest of the randomization: take the force item from the YAML.
            pushes = RandomizationConfig.load(path).object_force
            cfg = replace(cfg, object_force=replace(pushes, enabled=True))
        else:
            cfg = replace(cfg, object_force=replace(cfg.object_force, enabled=force))
    return cfg


def driver_command_paths(path: Path) -> Any:
    """The factory of the robot driver's command paths configured by ``path`` (a driver parameter YAML),
    validated by the driver's own loader: file, node name, keys and ranges.

    The driver package depends on recipe_sim, not the other way round: an optional import.
    """
    try:
        from recipe_gr1_driver.command_path import driver_command_paths as factory
    except ImportError as exc:
        raise ValueError(f"--command-path {path}: needs recipe_gr1_driver ({exc})") from exc
    return factory(path)


def make_env(
    sub: SubTask,
    num_envs: int,
    seed: int,
    randomization: RandomizationConfig,
    overlay: str | Path | None = None,
    init_states: Path | None = None,
    no_init_states: bool = False,
    num_threads: int = 2,
    task_overrides: dict[str, Any] | None = None,
    command_path: Path | None = None,
) -> Any:
    """A RecipeVecEnv for one sub-task (imports MuJoCo lazily so ``--help`` stays fast).

    ``command_path``: a driver parameter YAML (config/driver.yaml): the env's actuators then get what the
    robot's driver would make of the policy's targets (start ramp, step and velocity caps, limit margins;
    ``recipe_gr1_driver.command_path``), so demonstrations and PPO see the motion the robot will make.
    """
    from recipe_sim.model.params import ModelParams
    from recipe_sim.vec_env import RecipeVecEnv

    paths = None if command_path is None else driver_command_paths(command_path)
    params = ModelParams.from_yaml(overlay) if overlay is not None else None
    overrides = dict(task_overrides or {})
    if no_init_states:
        overrides["init_states"] = None
    env = RecipeVecEnv(
        sub.task,
        num_envs,
        objects=list(sub.objects),
        seed=seed,
        randomization=randomization,
        params=params,
        init_states=init_states,
        num_threads=num_threads,
        task_overrides=overrides or None,
    )
    if paths is not None:
        env.set_command_path(paths)
    return env
