#!/usr/bin/env bash
set -e
# shellcheck disable=SC1091
source /opt/ros/kilted/setup.bash
# shellcheck disable=SC1091
source /ws/install/setup.bash
export RECIPE_CONFIG_DIR=/ws/config
exec "$@"
