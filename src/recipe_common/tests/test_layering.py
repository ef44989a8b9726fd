"""Package layering: recipe_common under everything, recipe_sim (MuJoCo, torch, rsl-rl) only where needed.

The driver, autotune's action server, perception and the policy node must start on a robot workstation
without the simulator being importable; only the modules that really simulate may import recipe_sim.
"""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"

# module (relative to src/) -> why it may import recipe_sim
ALLOWED_SIM_IMPORTS = {
    "recipe_gr1_driver/recipe_gr1_driver/backends/sim.py": "the sim backend is the MuJoCo twin",
    "recipe_autotune/recipe_autotune/synthetic.py": "a twin plays the real robot for the embedded default",
    "recipe_autotune/recipe_autotune/clearance.py": "collision checks of calibration motions on the model",
    "recipe_autotune/recipe_autotune/tracking.py": "replays the commands in candidate simulators",
    "recipe_bringup/recipe_bringup/embedded.py": "the scripted smoke mode plays recipe_sim.scripted_play",
    "recipe_bringup/recipe_bringup/trial_node.py": "the trial service reads the twin's ground truth",
    "recipe_bringup/recipe_bringup/stack.py": "on the twin (backend sim only, lazily) perception gets "
    "the catalog object's box footprint",
    "recipe_perception/recipe_perception/self_filter.py": "renders the robot model at the joint states "
    "(robot self-filter); imported lazily, only when the filter is on",
    "recipe_perception/recipe_perception/sim_check.py": "perception's twin scenes: the calibration's sim "
    "check (a rendered board) and the benchmark's scripted grasp-and-lift episodes",
}


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
    return mods


def _package_modules() -> list[Path]:
    out = []
    for pkg in sorted(p for p in SRC.iterdir() if (p / "package.xml").is_file()):
        code = pkg / pkg.name
        if code.is_dir():
            out += sorted(code.rglob("*.py"))
    return out


def test_only_simulating_modules_import_recipe_sim():
    offenders = []
    for path in _package_modules():
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("recipe_sim/") or rel in ALLOWED_SIM_IMPORTS:
            continue
        sim = sorted(m for m in _imports(path) if m == "recipe_sim" or m.startswith("recipe_sim."))
        if sim:
            offenders.append(f"{rel}: {sim}")
    assert not offenders, "import recipe_sim outside the simulating modules:\n" + "\n".join(offenders)


def test_recipe_common_needs_neither_simulator_nor_learning_stack():
    for path in (SRC / "recipe_common" / "recipe_common").rglob("*.py"):
        top = {m.split(".")[0] for m in _imports(path)}
        banned = top & {"recipe_sim", "recipe_policy", "recipe_perception", "recipe_gr1_driver",
                        "recipe_autotune", "recipe_bringup", "mujoco", "rsl_rl"}
        assert not banned, f"{path.relative_to(SRC)} imports {sorted(banned)}"
        if "ros" not in path.relative_to(SRC / "recipe_common" / "recipe_common").parts:
            assert "rclpy" not in top, f"{path.relative_to(SRC)}: rclpy only under recipe_common.ros"


_BLOCKER = textwrap.dedent("""
    import importlib.abc, sys, time
    class _Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "recipe_sim" or name.startswith("recipe_sim."):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
            return None
    sys.meta_path.insert(0, _Hide())
""")


def _run_hidden(body: str) -> subprocess.CompletedProcess:
    code = _BLOCKER + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC / "recipe_gr1_driver" / "tests"),
                                                         os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=ROOT)


def test_driver_runs_the_gr1_backend_with_recipe_sim_hidden():
    r = _run_hidden("""
        t0 = time.perf_counter()
        import recipe_gr1_driver.node  # noqa: F401
        from recipe_gr1_driver.backends.gr1 import GR1Backend
        print(f"import_s={time.perf_counter() - t0:.3f}")
        heavy = sorted(m for m in ("mujoco", "torch", "rsl_rl", "recipe_sim") if m in sys.modules)
        assert not heavy, heavy
        from driver_fake_peers import FakeDexHand, FakeGRXServer, wait_for
        from driver_testing import free_port
        port = free_port()
        server = FakeGRXServer(port)
        hands = (FakeDexHand([0.0] * 6), FakeDexHand([0.0] * 6))
        be = GR1Backend(server_ip="127.0.0.1", server_port=port, zenoh_listen=["tcp/127.0.0.1:0"],
                        hand_ips=("127.0.0.1", "127.0.0.1"), hand_ports=(hands[0].ports, hands[1].ports),
                        enable_on_start=False, hand_poll_rate_hz=50.0)
        be.start()
        try:
            assert wait_for(lambda: be.status().ok, 10.0), be.status()
            q, dq, tau = be.read_state()
            assert len(q) == len(be.state_names)
        finally:
            be.stop()
            for h in hands:
                h.close()
            server.close()
        print("ok")
    """)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_autotune_server_imports_with_recipe_sim_hidden():
    r = _run_hidden("""
        import recipe_autotune.server  # noqa: F401  (MuJoCo itself is autotune's simulator)
        assert "recipe_sim" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr
