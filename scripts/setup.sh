#!/usr/bin/env bash
# One-command, idempotent workspace setup: Debian packages, venv with pinned wheels, the rosidl cmake
# path fix, colcon build. Each step is skipped when its inputs have not changed since its last success
# (a stamp file written only after the step succeeds), so a second run takes seconds and a failed run
# leaves nothing that breaks the next one.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
STAMPS="$ROOT/.cache/stamps"
PYTHON_BIN=${RECIPE_PYTHON:-python3.11}
STEP="start"

step() { STEP="$1"; printf '\033[1m==> %s\033[0m\n' "$1"; }
fail() { printf '\033[31msetup failed in step "%s": %s\033[0m\n' "$STEP" "$1" >&2; exit 1; }
trap 'fail "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }

# --- 1. Python --------------------------------------------------------------------------------
step "check Python 3.11"
command -v "$PYTHON_BIN" >/dev/null || fail "$PYTHON_BIN not found; install Python 3.11 (or set RECIPE_PYTHON)"
"$PYTHON_BIN" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || fail "$PYTHON_BIN is not Python 3.11 (the ROS 2 kilted wheels are cp311)"

# --- 2. Debian packages -----------------------------------------------------------------------
step "Debian packages (requirements/apt.txt)"
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done <requirements/apt.txt
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || fail "need root or sudo to install: ${missing[*]}"
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all present"
fi

# --- 3. venv + pinned wheels ------------------------------------------------------------------
step "Python venv (.venv) with pinned requirements"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$VENV" "$STAMPS/venv"
  "$PYTHON_BIN" -m venv "$VENV"
fi
req_hash=$(hash_of requirements/lock.txt requirements/constraints.txt requirements/nodeps.txt)
if stamp_ok venv "$req_hash"; then
  echo "up to date"
else
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  "$VENV/bin/python" -m pip install -q -r requirements/lock.txt -c requirements/constraints.txt
  "$VENV/bin/python" -m pip install -q --no-deps -r requirements/nodeps.txt -c requirements/constraints.txt
  "$VENV/bin/python" - <<'PY'
import torch
v = torch.__version__
assert v.startswith("2.13.0") and "+cu" not in v, f"torch {v} installed; expected the 2.13.0 CPU build"
PY
  stamp_set venv "$req_hash"
fi

# --- 4. rosidl cmake path fix -----------------------------------------------------------------
step "rosidl cmake path fix"
"$VENV/bin/python" scripts/fix_rosidl_paths.py "$VENV"

# --- 5. colcon build --------------------------------------------------------------------------
step "colcon build (src/)"
# Python packages are built with --symlink-install, so editing their code needs no rebuild; only the
# package manifests, setup files and interface definitions decide whether colcon must run again.
build_inputs=$(find src -type f \( -name package.xml -o -name setup.py -o -name setup.cfg \
  -o -name CMakeLists.txt -o -name '*.msg' -o -name '*.srv' -o -name '*.action' -o -path '*/resource/*' \) \
  -not -path '*/__pycache__/*' | LC_ALL=C sort)
build_hash=$( (echo "$req_hash"; for f in $build_inputs; do echo "$f"; cat "$f"; done) | sha256sum | cut -d' ' -f1)
if stamp_ok colcon "$build_hash" && [[ -f install/setup.bash ]]; then
  echo "up to date"
else
  rm -f "$STAMPS/colcon"
  (
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOG_DIR="$ROOT/log/ros"
    colcon --log-base log/colcon build --base-paths src --symlink-install \
      --event-handlers console_direct- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python3" -DBUILD_TESTING=OFF -Wno-dev
  )
  stamp_set colcon "$build_hash"
fi
step "done"
