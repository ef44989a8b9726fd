"""Rewrite the wheel build machine's Python/numpy include paths in the rosidl cmake exports.

The kilted PyPI wheels ship ``*__rosidl_generator_pyExport.cmake`` files that hard-code
``/opt/python/cp311-cp311/...`` include directories from the machine the wheels were built on; any
package that generates Python interfaces (our recipe_interfaces) then fails to configure. Idempotent.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILD_NP_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main(venv: str) -> int:
    share = Path(venv) / "share"
    if not share.is_dir():
        print(f"error: {share} does not exist; is {venv} the workspace venv?", file=sys.stderr)
        return 1
    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    changed = 0
    files = list(share.rglob("*__rosidl_generator_pyExport.cmake"))
    for f in files:
        text = f.read_text()
        new = text.replace(BUILD_NP_INCLUDE, np_inc).replace(BUILD_PY_INCLUDE, py_inc)
        if new != text:
            f.write_text(new)
            changed += 1
    print(f"{len(files)} export files, {changed} rewritten")
    if not files:
        print("error: no rosidl generator exports found; ROS wheels missing?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
