"""The stack declaration, the launch file built from it, and both pip-runner modes agree."""

import importlib.util
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from recipe_bringup.stack import (
    TWIN_TRUTH_TOPIC,
    StackOptions,
    command_prefix,
    deploy_stack,
    format_cpu_list,
    load_deploy_defaults,
    parse_cpu_list,
    ros_args,
)
from recipe_bringup.supervisor import Supervisor
from recipe_common.config import ConfigError
from recipe_common.realtime import REALTIME_PRIORITY_ENV
from recipe_common.tasks import TASK_NAMES

ROOT = Path(__file__).resolve().parents[3]


def _console_scripts(package: str) -> set[str]:
    return set(re.findall(r'"(\w+)\s*=\s*[\w.]+:\w+"', (ROOT / "src" / package / "setup.py").read_text()))


class _Recorder:
    def __init__(self, **kw):
        self.kw = kw


def _fake_launch_modules(monkeypatch, args: dict[str, str]) -> None:
    """Stand-ins for launch / launch_ros / ament_index_python (no registry has them): they record."""

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return args[self.name]

    mods = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda actions: actions),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=lambda name, **kw: ("arg", name, kw),
            ExecuteProcess=lambda **kw: ("process", kw),
            OpaqueFunction=lambda function: ("opaque", function)),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros.actions": types.SimpleNamespace(Node=_Recorder),
        "launch_ros": types.SimpleNamespace(),
        "ament_index_python.packages": types.SimpleNamespace(
            get_package_share_directory=lambda pkg: str(ROOT / "src" / pkg)),
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


def _launch_nodes(monkeypatch, **overrides) -> list:
    args = {"task": "grasp_reach", "backend": "sim", "hand": "fourier", "policy": "", "sim_object": "",
            "record": "false", **overrides}
    _fake_launch_modules(monkeypatch, args)
    spec = importlib.util.spec_from_file_location("deploy_launch", ROOT / "launch" / "deploy.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    actions = module.generate_launch_description()
    declared = {a[1] for a in actions if a[0] == "arg"}
    assert declared == set(args), declared
    (opaque,) = [a for a in actions if a[0] == "opaque"]
    return opaque[1](None)


@pytest.mark.parametrize("backend", ["sim", "gr1"])
def test_launch_file_starts_exactly_the_declared_processes(monkeypatch, backend):
    defaults = load_deploy_defaults()
    launched = _launch_nodes(monkeypatch, backend=backend)
    opts = StackOptions(task="grasp_reach", backend=backend, policy=defaults.tasks["grasp_reach"].policy,
                        sim_object=defaults.tasks["grasp_reach"].sim_object if backend == "sim" else "",
                        camera_rate_hz=defaults.camera_rate_hz, twin_cpus=defaults.twin_cpus)
    procs = deploy_stack(opts)
    want = [(p.package, p.executable) for p in procs]
    assert [(n.kw["package"], n.kw["executable"]) for n in launched] == want
    for node, proc in zip(launched, procs, strict=True):
        files = [Path(p) for p in node.kw["parameters"]]
        assert [f.name for f in files if f.parent.name == "config"] == proc.params_files()
        generated = [f for f in files if f.parent.name != "config"]
        values = yaml.safe_load(generated[0].read_text()) if generated else {}
        assert values == {n.name: {"ros__parameters": n.parameters} for n in proc.nodes if n.parameters}
        assert ("name" in node.kw) == (len(proc.nodes) == 1)
        assert node.kw.get("prefix", "").split() == command_prefix(proc)
    assert any(p.nice < 0 for p in procs)  # the policy asks for a higher priority in both runners
    for node, proc in zip(launched, procs, strict=True):  # and for SCHED_FIFO, through its environment
        assert node.kw.get("additional_env", {}) == dict(proc.env)
        assert (REALTIME_PRIORITY_ENV in dict(proc.env)) == (proc.key == "policy")


def test_record_adds_ros2_bag_record(monkeypatch):
    launched = _launch_nodes(monkeypatch, record="true")
    assert launched[-1][0] == "process" and launched[-1][1]["cmd"][:4] == ["ros2", "bag", "record", "-s"]


@pytest.mark.parametrize("task", TASK_NAMES)
def test_every_declared_process_exists_for_launch_and_the_pip_runner(task):
    for backend in ("sim", "gr1"):
        for proc in deploy_stack(StackOptions(task=task, backend=backend)):
            assert proc.executable in _console_scripts(proc.package), f"{proc.package}/{proc.executable}"
            assert (ROOT / "src" / proc.package / "package.xml").is_file()
            module_file = ROOT / "src" / proc.package / Path(*proc.module.split("."))
            assert module_file.with_suffix(".py").is_file(), proc.compose
            assert "__main__" in module_file.with_suffix(".py").read_text(), f"{proc.module} has no main"
            for f in proc.params_files():
                data = yaml.safe_load((ROOT / "config" / f).read_text()) if (ROOT / "config" / f).is_file() \
                    else None
                if data is not None:
                    names = {n.name for n in proc.nodes if n.params_file == f}
                    assert names <= set(data), f"config/{f} has no section for {names}"


def test_supervisor_commands_carry_the_same_parameters():
    procs = deploy_stack(StackOptions(task="grasp_reach", backend="sim", policy="p", sim_object="can_medium"))
    sup = Supervisor(procs, ROOT / "config", ROOT / "log" / "test-supervisor")
    twin = sup.command(procs[0])
    assert twin[1:3] == ["-m", "recipe_bringup.twin"]  # normal priority: no prefix
    assert twin[3:] == ros_args(procs[0], ROOT / "config")
    assert "gr1_driver:sim_object:=can_medium" in twin and "trials:task:=grasp_reach" in twin
    policy = sup.command(procs[-1])
    assert "policy:policy:=p" in policy and "policy:task:=grasp_reach" in policy
    assert policy[:3] == ["nice", "-n", str(procs[-1].nice)] and procs[-1].nice < 0


def test_truth_object_source_replaces_perception_on_the_twin_only():
    procs = deploy_stack(StackOptions(object_source="truth"))
    assert [p.key for p in procs] == ["twin", "policy"]
    assert procs[0].nodes[1].parameters["truth_topic"] == "/object_state"
    with pytest.raises(ValueError, match="only on the twin"):
        StackOptions(backend="gr1", object_source="truth")
    # with perception in the loop the twin's truth goes to a topic of its own, which the trial bags record
    # and nothing in the stack reads
    twin = deploy_stack(StackOptions())[0]
    assert twin.nodes[1].parameters["truth_topic"] == TWIN_TRUTH_TOPIC != "/object_state"
    with pytest.raises(ValueError, match="task: 'pour'"):
        StackOptions(task="pour")


def test_perception_gets_the_twins_box_footprint_only_for_an_oblong_box():
    def perception_params(**kw):
        return next(p for p in deploy_stack(StackOptions(**kw)) if p.key == "perception").nodes[0].parameters

    assert perception_params(task="box_lift", sim_object="lift_box") == {"object_footprint_m": [0.10, 0.16]}
    assert perception_params(task="grasp_reach", sim_object="can_medium") == {}
    assert perception_params(task="handover", sim_object="handover_block") == {}  # square: as deep as wide
    # on the robot the user's config/perception.yaml says it
    assert perception_params(task="box_lift", backend="gr1") == {}


def test_deploy_defaults_are_validated(tmp_path):
    bad = tmp_path / "deploy.yaml"
    text = (ROOT / "config" / "deploy.yaml").read_text()
    bad.write_text(text.replace("count: 5", "count: 0"))
    with pytest.raises(ConfigError, match=r"deploy\.yaml: trials\.count must be >= 1"):
        load_deploy_defaults(bad)
    bad.write_text(text.replace("  box_lift:", "  box_lyft:"))
    with pytest.raises(ConfigError, match="unknown key 'box_lyft'"):
        load_deploy_defaults(bad)
    bad.write_text(text.replace('twin_cpus: "0"', 'twin_cpus: "first"'))
    with pytest.raises(ConfigError, match=r"deploy\.yaml: twin_cpus: 'first' is not a CPU list"):
        load_deploy_defaults(bad)
    assert load_deploy_defaults().twin_cpus == "0"


def test_the_twin_can_be_pinned_apart_from_the_rest_of_the_stack():
    """twin_cpus: the twin on its CPUs, every other process on the rest, as taskset in both runners' commands
    (before nice); no pinning where it would leave the stack nothing or the CPUs do not exist."""
    opts = StackOptions(task="grasp_reach", backend="sim", policy="p", twin_cpus="0")
    procs = deploy_stack(opts, cpus={0, 1})
    assert {p.key: p.cpus for p in procs} == {"twin": "0", "perception": "1", "policy": "1"}
    policy = procs[-1]
    assert command_prefix(policy) == ["taskset", "-c", "1", "nice", "-n", str(policy.nice)]
    assert command_prefix(procs[0]) == ["taskset", "-c", "0"]
    sup = Supervisor(procs, ROOT / "config", ROOT / "log" / "test-supervisor")
    assert sup.command(policy)[:6] == command_prefix(policy)
    assert {p.cpus for p in deploy_stack(opts, cpus=range(8))[1:]} == {"1,2,3,4,5,6,7"}
    for cpus in ({0}, {1, 2}):  # nothing left for the stack / the twin's CPU is not on this machine
        assert all(p.cpus == "" for p in deploy_stack(opts, cpus=cpus))
    gr1 = deploy_stack(replace(opts, backend="gr1", twin_cpus="0"), cpus={0, 1})
    assert all(p.cpus == "" for p in gr1)  # no twin on the robot: nothing to keep apart


def test_cpu_lists_are_taskset_syntax():
    assert parse_cpu_list("0") == {0} and parse_cpu_list("0,2-4") == {0, 2, 3, 4}
    assert format_cpu_list({3, 1, 2}) == "1,2,3"
    for bad in ("", "a", "1-", "3-1", "0;1"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)
    with pytest.raises(ValueError, match="CPU list"):
        StackOptions(twin_cpus="zero")
