"""Deploy the recipe stack on the GR1 (backend:=gr1) or on its MuJoCo twin (backend:=sim, default).

    ros2 launch recipe_bringup deploy.launch.py task:=grasp_reach backend:=sim
    ros2 launch recipe_bringup deploy.launch.py task:=box_lift backend:=gr1 policy:=<ref> record:=true

For full ROS 2 installs and the docker image. The processes, their nodes and parameters come from
recipe_bringup.stack.deploy_stack, the declaration the pip workspace's runner (`./dev demo`) uses too;
each process gets a generated node-keyed parameter file on top of its files in config/. Then run trials
on the twin with `ros2 run recipe_bringup trials --trials 10`.
"""

import tempfile
from pathlib import Path

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from recipe_bringup.stack import (
    TWIN_TRUTH_TOPIC,
    StackOptions,
    command_prefix,
    deploy_stack,
    launch_parameters,
    load_deploy_defaults,
)
from recipe_common.tasks import TASK_NAMES

RECORD_TOPICS = ["/joint_states", "/joint_commands", "/object_state", "/policy/status", "/trial/status",
                 "/diagnostics"]


def _nodes(context, *_args, **_kwargs):
    config = Path(get_package_share_directory("recipe_bringup")) / "config"
    arg = {k: LaunchConfiguration(k).perform(context)
           for k in ("task", "backend", "hand", "policy", "sim_object", "record")}
    defaults = load_deploy_defaults(config / "deploy.yaml")
    task = defaults.tasks[arg["task"]]
    opts = StackOptions(task=arg["task"], backend=arg["backend"], hand=arg["hand"],
                        policy=arg["policy"] or task.policy,
                        sim_object=arg["sim_object"] or (task.sim_object if arg["backend"] == "sim" else ""),
                        camera_rate_hz=defaults.camera_rate_hz, twin_cpus=defaults.twin_cpus)
    actions = []
    for proc in deploy_stack(opts):
        params = [str(config / f) for f in proc.params_files()]
        generated = launch_parameters(proc)
        if generated:
            f = tempfile.NamedTemporaryFile("w", suffix=f"_{proc.key}.yaml", delete=False)
            yaml.safe_dump(generated, f)
            f.close()
            params.append(f.name)
        # one node: name it; several share the process (the twin): each keeps its own name
        named = {"name": proc.nodes[0].name} if len(proc.nodes) == 1 else {}
        prefix = {"prefix": " ".join(command_prefix(proc))} if command_prefix(proc) else {}
        actions.append(Node(package=proc.package, executable=proc.executable, output="screen",
                            parameters=params, additional_env=dict(proc.env), **named, **prefix))
    if arg["record"].lower() == "true":
        topics = RECORD_TOPICS + ([TWIN_TRUTH_TOPIC] if arg["backend"] == "sim" else [])  # the twin's truth
        actions.append(ExecuteProcess(cmd=["ros2", "bag", "record", "-s", "mcap", *topics],
                                      output="screen"))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("task", default_value="grasp_reach", choices=list(TASK_NAMES),
                              description="task the policy runs"),
        DeclareLaunchArgument("backend", default_value="sim", choices=["sim", "gr1"],
                              description="sim: MuJoCo twin (+ trial service); gr1: the real robot"),
        DeclareLaunchArgument("hand", default_value="fourier", choices=["fourier", "inspire"]),
        DeclareLaunchArgument("policy", default_value="",
                              description="policy ref; empty = the committed one (config/deploy.yaml)"),
        DeclareLaunchArgument("sim_object", default_value="", description="the twin's object"),
        DeclareLaunchArgument("record", default_value="false", choices=["true", "false"],
                              description="ros2 bag record -s mcap of the stack's topics"),
        OpaqueFunction(function=_nodes),
    ])
