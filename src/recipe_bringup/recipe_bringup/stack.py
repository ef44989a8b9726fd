"""The deploy stack, declared once: which processes, which nodes in each, which parameters, what order.

Three consumers build from ``deploy_stack(options)`` and nothing else, so they cannot drift apart:

* ``launch/deploy.launch.py`` (full ROS 2 installs and the docker image) turns each process into a
  ``launch_ros`` Node with a generated, node-keyed parameter file;
* the pip workspace's runner (``recipe_bringup.runner``, behind ``./dev demo``) either composes every
  node class in one process (one MultiThreadedExecutor) or starts one process per entry under the
  supervisor (``recipe_bringup.supervisor``: start order, readiness, SIGINT fan-out, restarts);
* ``test_stack.py`` checks that the launch file and both runner modes see the same nodes.

On the twin (``backend: sim``) the driver shares its process with the trial service, because the trial
service reads the twin's ground truth (``recipe_bringup.twin``). On the robot (``backend: gr1``) the driver
runs alone and the RealSense ingest node publishes the cameras.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recipe_common import robot_spec
from recipe_common.cameras import THIRD_VIEW, camera_table
from recipe_common.config import ConfigError, as_float, as_int, as_str, in_file, load_yaml, require_keys
from recipe_common.paths import config_path
from recipe_common.realtime import REALTIME_PRIORITY_ENV
from recipe_common.tasks import TASK_NAMES

BACKENDS = ("sim", "gr1")
OBJECT_SOURCES = ("perception", "truth")
# Where the twin's trial node publishes the true object position while perception drives /object_state: the
# trial bags record it beside perception's estimate (benchmarks/perception_in_trials.py compares the two).
# No node of the stack subscribes to it; a real robot has no such topic.
TWIN_TRUTH_TOPIC = "/twin/object_truth"
DEPLOY_FORMAT = "recipe_bringup/deploy/v1"


@dataclass(frozen=True)
class TaskDefaults:
    policy: str
    sim_object: str


@dataclass(frozen=True)
class DeployDefaults:
    tasks: dict[str, TaskDefaults]
    trials: int
    seed: int
    video_trials: int
    camera_rate_hz: float
    twin_cpus: str = ""


CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_cpu_list(text: str) -> frozenset[int]:
    """``taskset -c`` syntax ("0", "0,2", "1-3") -> the CPU numbers; ValueError on anything else."""
    if not CPU_LIST.match(text):
        raise ValueError(f"{text!r} is not a CPU list like '0', '0,2' or '1-3'")
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if last < first:
            raise ValueError(f"{text!r}: range {part} runs backwards")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def load_deploy_defaults(path: str | Path | None = None) -> DeployDefaults:
    """config/deploy.yaml: the committed policy and twin object of each task, trial counts."""
    path = Path(path) if path is not None else config_path("deploy.yaml")
    data = load_yaml(path, DEPLOY_FORMAT)
    try:
        require_keys(data, "deploy", {"format", "tasks", "trials", "camera_rate_hz"}, {"twin_cpus"})
        require_keys(data["tasks"], "tasks", set(TASK_NAMES))
        tasks = {}
        for name, raw in data["tasks"].items():
            require_keys(raw, f"tasks.{name}", {"policy", "sim_object"})
            tasks[name] = TaskDefaults(as_str(raw["policy"], f"tasks.{name}.policy"),
                                       as_str(raw["sim_object"], f"tasks.{name}.sim_object"))
        t = data["trials"]
        require_keys(t, "trials", {"count", "seed", "video_trials"})
        twin_cpus = as_str(data.get("twin_cpus", ""), "twin_cpus")
        if twin_cpus:
            try:
                parse_cpu_list(twin_cpus)
            except ValueError as exc:
                raise ConfigError(f"twin_cpus: {exc}") from None
        return DeployDefaults(tasks, as_int(t["count"], "trials.count", 1, 10000),
                              as_int(t["seed"], "trials.seed", 0),
                              as_int(t["video_trials"], "trials.video_trials", 0),
                              as_float(data["camera_rate_hz"], "camera_rate_hz", 0.5, 60.0), twin_cpus)
    except ConfigError as exc:
        raise in_file(path, exc) from None


@dataclass(frozen=True)
class NodeDecl:
    """One ROS node: its name (the key of its parameter file) and the parameters this stack sets."""

    name: str
    params_file: str | None  # file name under config/, node-keyed (``<name>: ros__parameters:``)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessDecl:
    """One OS process: a console script of ``package`` whose ``compose`` callable builds its nodes."""

    key: str
    package: str
    executable: str
    compose: str  # "module:callable"; callable(overrides: dict[node name, dict]) -> list of rclpy Nodes
    nodes: tuple[NodeDecl, ...]
    ready: str = ""  # "topic:/x" or "service:/x" the supervisor waits for before starting the next one
    required: bool = True  # False: restarted (at most ``max_restarts`` times) instead of stopping the stack
    max_restarts: int = 0
    env: tuple[tuple[str, str], ...] = ()  # extra environment variables of the process
    # Niceness the process runs at (``nice -n``); negative raises its CPU priority, which needs CAP_SYS_NICE
    # (root, or ``ulimit -e``/limits.conf ``nice``): without it ``nice`` says so in the log and the process
    # runs at normal priority. One process per node only: composed nodes share one priority.
    nice: int = 0
    cpus: str = ""  # CPUs the process may run on (``taskset -c`` list); "" = any

    @property
    def module(self) -> str:
        return self.compose.split(":")[0]

    def build(self, overrides: dict[str, dict[str, Any]] | None = None) -> list[Any]:
        """Construct this process's nodes in the current process (rclpy initialised by the caller).

        ``compose`` names either a function(overrides) -> nodes or a Node class taking
        ``parameter_overrides`` (a process of one node)."""
        from rclpy.node import Node
        from rclpy.parameter import Parameter

        module, name = self.compose.split(":")
        target = getattr(importlib.import_module(module), name)
        overrides = overrides if overrides is not None else overrides_by_node(self)
        if isinstance(target, type) and issubclass(target, Node):
            (node,) = self.nodes
            params = [Parameter(k, value=v) for k, v in overrides.get(node.name, {}).items()]
            return [target(parameter_overrides=params)]
        return list(target(overrides))

    def params_files(self) -> list[str]:
        return [n.params_file for n in self.nodes if n.params_file]


@dataclass(frozen=True)
class StackOptions:
    task: str = "grasp_reach"
    backend: str = "sim"
    hand: str = robot_spec.DEFAULT_HAND
    policy: str = ""  # "" = the committed default of the task (config/policy_node.yaml)
    sim_object: str = ""  # the twin's object; "" = the policy's first object
    object_source: str = "perception"  # or "truth": the twin publishes its true object position (sim only)
    camera_rate_hz: float = 5.0
    twin_cpus: str = ""  # the twin's CPUs; the rest of the stack gets the others (see pin_twin)

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ValueError(f"task: {self.task!r} is not one of {list(TASK_NAMES)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: {self.backend!r} is not one of {list(BACKENDS)}")
        robot_spec.get_hand(self.hand)
        if self.object_source not in OBJECT_SOURCES:
            raise ValueError(f"object_source: {self.object_source!r} is not one of {list(OBJECT_SOURCES)}")
        if self.object_source == "truth" and self.backend != "sim":
            raise ValueError("object_source 'truth' exists only on the twin (backend sim)")
        if self.twin_cpus:
            parse_cpu_list(self.twin_cpus)


POLICY_NICE = -5  # the policy process's niceness (see deploy_stack)
# the SCHED_FIFO priority of its inference (recipe_common.realtime): low among realtime priorities, so a
# robot's own control loop (ros2_control's default is 50) keeps precedence over it
POLICY_REALTIME_PRIORITY = 10


def available_cpus() -> frozenset[int]:
    """The CPUs this process may run on (what its children inherit)."""
    return frozenset(os.sched_getaffinity(0))


def pin_twin(procs: list[ProcessDecl], twin_cpus: str, available: Iterable[int]) -> list[ProcessDecl]:
    """The twin on ``twin_cpus``, every other process on the remaining CPUs; unchanged when that leaves
    nothing (or the twin's CPUs are not all available here).

    The twin stands in for the robot and its cameras, which have their own hardware. On a 2-core machine
    its physics and two 848x480 depth renders (half a core, in bursts) preempted the policy's inference:
    observation-to-command p99 66-75 ms over three 20-trial runs; with the twin on CPU 0 and perception +
    policy on CPU 1, 46 and 55 ms (only the policy pinned, perception free: 63 ms; docs/deploy.md). On a
    bigger machine the rule still gives the stack every CPU but the twin's.
    """
    pinned = parse_cpu_list(twin_cpus)
    avail = frozenset(available)
    rest = avail - pinned
    if not pinned <= avail or not rest or not any(p.key == "twin" for p in procs):
        return procs
    return [replace(p, cpus=format_cpu_list(pinned if p.key == "twin" else rest)) for p in procs]


def sim_object_footprint(name: str) -> list[float] | None:
    """The twin's object footprint (half-extents x, y in m) when it is an oblong box, else None (a round or
    square footprint is as deep as wide, which the centre estimate assumes without one).

    Perception's centre estimate needs a box's footprint (its depth along the view is not visible from the
    tripod; config/perception.yaml ``object_footprint_m``). On the robot the user writes it there; on the
    twin the object is a catalog entry, read from config/objects.yaml through recipe_sim (which the twin
    runs anyway).
    """
    if not name:
        return None
    from recipe_sim.objects import load_catalog

    spec = load_catalog().objects.get(name)
    if spec is None or spec.shape != "box" or abs(spec.size[0] - spec.size[1]) < 1e-6:
        return None
    return [float(spec.size[0]), float(spec.size[1])]


def deploy_stack(opts: StackOptions, cpus: Iterable[int] | None = None) -> list[ProcessDecl]:
    """The processes of the deploy stack in start order (``cpus``: the machine's, for ``twin_cpus``;
    default: this process's affinity)."""
    driver = NodeDecl("gr1_driver", "driver.yaml", {"backend": opts.backend, "hand": opts.hand,
                                                   "camera_rate_hz": opts.camera_rate_hz})
    procs: list[ProcessDecl] = []
    if opts.backend == "sim":
        driver = replace(driver, parameters={**driver.parameters, "sim_object": opts.sim_object})
        procs.append(ProcessDecl(
            key="twin", package="recipe_bringup", executable="twin", compose="recipe_bringup.twin:compose",
            nodes=(driver, NodeDecl("trials", "trials.yaml", {
                "task": opts.task, "truth_topic": "/object_state" if opts.object_source == "truth"
                else TWIN_TRUTH_TOPIC})),
            ready="service:/trial/reset"))
    else:
        procs.append(ProcessDecl(
            key="driver", package="recipe_gr1_driver", executable="driver",
            compose="recipe_gr1_driver.node:DriverNode", nodes=(driver,), ready="topic:/joint_states"))
        procs.append(ProcessDecl(
            key="cameras", package="recipe_perception", executable="realsense",
            compose="recipe_perception.realsense.node:RealSenseNode",
            nodes=(NodeDecl("realsense", "perception.yaml"),),
            ready=f"topic:{camera_table()[THIRD_VIEW].topics().depth}", required=False, max_restarts=3))
    if opts.object_source == "perception":
        footprint = sim_object_footprint(opts.sim_object) if opts.backend == "sim" else None
        procs.append(ProcessDecl(
            key="perception", package="recipe_perception", executable="perception",
            compose="recipe_perception.node:PerceptionNode",
            nodes=(NodeDecl("perception", "perception.yaml",
                            {"object_footprint_m": footprint} if footprint else {}),),
            ready="topic:/object_state"))
    procs.append(ProcessDecl(
        key="policy", package="recipe_policy", executable="policy_node",
        compose="recipe_policy.node:PolicyNode",
        nodes=(NodeDecl("policy", "policy_node.yaml", {"task": opts.task, "policy": opts.policy,
                                                        "hand": opts.hand}),),
        # The one latency-bound process of the workstation: on 2 cores shared with the twin, perception and
        # the trial recorder, a generalist's observation-to-command p99 over 20 trials was 75 ms at normal
        # priority, 46-64 ms at nice -5 and 38 ms with its inference under SCHED_FIFO (docs/deploy.md).
        # The niceness stays for the rest of the process and for machines that allow no realtime priority.
        ready="service:/policy/start", nice=POLICY_NICE,
        env=((REALTIME_PRIORITY_ENV, str(POLICY_REALTIME_PRIORITY)),)))
    if opts.twin_cpus:
        procs = pin_twin(procs, opts.twin_cpus, available_cpus() if cpus is None else cpus)
    return procs


def command_prefix(proc: ProcessDecl) -> list[str]:
    """What runs the process's command (the supervisor's argv head, launch_ros's ``prefix``)."""
    pin = ["taskset", "-c", proc.cpus] if proc.cpus else []
    return [*pin, *(["nice", "-n", str(proc.nice)] if proc.nice else [])]


# --------------------------------------------------------------------------- what each consumer needs


def ros_value(v: Any) -> str:
    """A parameter value as ``-p name:=value`` text (YAML scalars)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "''" if v == "" else v
    return str(v)


def ros_args(proc: ProcessDecl, config_dir: Path) -> list[str]:
    """The ``--ros-args`` of a process: its nodes' parameter files, then node-prefixed overrides."""
    args = ["--ros-args"]
    for f in proc.params_files():
        args += ["--params-file", str(config_dir / f)]
    for node in proc.nodes:
        for k, v in node.parameters.items():
            args += ["-p", f"{node.name}:{k}:={ros_value(v)}"]
    return args


def launch_parameters(proc: ProcessDecl) -> dict[str, dict[str, Any]]:
    """Node-keyed parameter overrides of a process, in the params-file layout launch files pass on."""
    return {n.name: {"ros__parameters": dict(n.parameters)} for n in proc.nodes if n.parameters}


def overrides_by_node(proc: ProcessDecl) -> dict[str, dict[str, Any]]:
    return {n.name: dict(n.parameters) for n in proc.nodes}
