# Source this file to get the workspace environment (venv, ROS 2 wheels, colcon install space).
# Every process we start talks to localhost only and logs inside the workspace.
RECIPE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export RECIPE_ROOT
# venv activate and colcon's setup.bash read unset variables: allow that even under `set -u`.
case $- in *u*) _recipe_nounset=1; set +u ;; *) _recipe_nounset=0 ;; esac
# shellcheck disable=SC1091
source "$RECIPE_ROOT/.venv/bin/activate"
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_LOG_DIR=${ROS_LOG_DIR:-$RECIPE_ROOT/log/ros}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export MUJOCO_GL=${MUJOCO_GL:-egl}
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-$MUJOCO_GL}
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
if [[ -f "$RECIPE_ROOT/install/setup.bash" ]]; then
  # shellcheck disable=SC1091
  source "$RECIPE_ROOT/install/setup.bash"
fi
# What `ros2 run <pkg> <exe>` would find: the console scripts colcon installs under install/<pkg>/lib/<pkg>/.
for _d in "$RECIPE_ROOT"/install/*/lib/*/; do
  [[ -d "$_d" && "$_d" != */python3* ]] && PATH="$_d:$PATH"
done
unset _d
export PATH
if [[ $_recipe_nounset == 1 ]]; then set -u; fi
unset _recipe_nounset
