"""Deploy the recipe stack on the GR1 (backend:=gr1) or on its MuJoCo twin (backend:=sim, default).

    ros2 launch recipe_bringup deploy.launch.py task:=box_lift backend:=sim

For full ROS 2 installs and the docker image. Without `launch` (the pip-only workspace), run the same
nodes in one process: `./dev demo --task box_lift` (recipe_bringup.embedded).
Nodes not yet part of the stack (perception, diffusion policy) join here when their packages provide them.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from recipe_common.tasks import TASK_NAMES


def generate_launch_description() -> LaunchDescription:
    config = Path(get_package_share_directory("recipe_bringup")) / "config"
    return LaunchDescription([
        DeclareLaunchArgument("task", default_value="grasp_reach", choices=list(TASK_NAMES),
                              description="task the policy runs"),
        DeclareLaunchArgument("backend", default_value="sim", choices=["sim", "gr1"],
                              description="sim: MuJoCo twin; gr1: the real robot"),
        DeclareLaunchArgument("hand", default_value="fourier", choices=["fourier", "inspire"]),
        Node(
            package="recipe_gr1_driver",
            executable="driver",
            name="gr1_driver",
            output="screen",
            parameters=[str(config / "driver.yaml"), {
                "backend": LaunchConfiguration("backend"),
                "hand": LaunchConfiguration("hand"),
            }],
        ),
    ])
