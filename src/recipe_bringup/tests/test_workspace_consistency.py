"""Checks that keep the workspace's several descriptions of itself in agreement."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _console_scripts(package: str) -> set[str]:
    text = (ROOT / "src" / package / "setup.py").read_text()
    return set(re.findall(r'"(\w+)\s*=\s*[\w.]+:\w+"', text))


def _launch_nodes(path: Path) -> list[tuple[str, str]]:
    """(package, executable) of every launch_ros Node(...) in a launch file, read without `launch`."""
    nodes = []
    for call in ast.walk(ast.parse(path.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            nodes.append((ast.literal_eval(kw["package"]), ast.literal_eval(kw["executable"])))
    return nodes


def test_launch_files_name_existing_executables_and_configs():
    launch_files = sorted((ROOT / "launch").glob("*.launch.py"))
    assert launch_files, "no launch files"
    # Launch files that build their nodes from recipe_bringup.stack are checked against it in test_stack.py.
    launch_files = [lf for lf in launch_files if "deploy_stack" not in lf.read_text()]
    for lf in launch_files:
        nodes = _launch_nodes(lf)
        assert nodes, f"{lf.name} starts no node"
        for pkg, exe in nodes:
            assert exe in _console_scripts(pkg), f"{lf.name}: {pkg} has no console script {exe!r}"
        for cfg in re.findall(r'config / "([\w.]+)"', lf.read_text()):
            assert (ROOT / "config" / cfg).is_file(), f"{lf.name} refers to missing config/{cfg}"


def test_docker_requirements_are_generated_from_the_pip_setup():
    r = subprocess.run([sys.executable, str(ROOT / "scripts/gen_docker_requirements.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_package_has_manifest_and_tests():
    for pkg in sorted(p for p in (ROOT / "src").iterdir() if p.is_dir()):
        assert (pkg / "package.xml").is_file(), pkg.name
        assert list((pkg / "tests").glob("test_*.py")), f"{pkg.name} has no tests"


def test_second_setup_run_does_no_work():
    r = subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for step in ("Python venv", "colcon build"):
        section = out.split(step, 1)[1].split("==>", 1)[0]
        assert "up to date" in section, f"setup step {step!r} redid its work on an unchanged tree:\n{out}"
