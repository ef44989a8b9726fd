"""Driver + /autotune action server.

    ros2 launch recipe_bringup autotune.launch.py backend:=gr1
    ros2 action send_goal --feedback /autotune recipe_interfaces/action/Autotune "{population_size: 64}"
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    config = Path(get_package_share_directory("recipe_bringup")) / "config"
    return LaunchDescription([
        DeclareLaunchArgument("backend", default_value="sim", choices=["sim", "gr1"]),
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
        Node(
            package="recipe_autotune",
            executable="server",
            name="autotune_server",
            output="screen",
            parameters=[{"config_file": str(config / "autotune.yaml")}],
        ),
    ])
