"""One process per node of the stack, supervised: start order, readiness, SIGINT fan-out, restarts, exit code.

What ``ros2 launch`` does for a full ROS 2 install, for the pip workspace (no registry has ``launch``):

* processes start in the stack's order; each must become *ready* (its declared topic has a publisher or
  its service exists in the ROS graph) before the next starts, or start-up fails with the process's log;
* a process that exits on its own: a ``required`` one stops the whole stack (exit code 1, or 2 when it
  exited 2, the nodes' code for a configuration error); an optional one is restarted up to
  ``max_restarts`` times;
* SIGINT/SIGTERM to the supervisor stops the children in reverse order: SIGINT, then SIGTERM after
  ``stop_timeout``, and SIGKILL only for a child that ignores both (reported: it leaves /dev/shm files);
* every child gets its own session (a terminal's Ctrl-C reaches the supervisor only, so the order holds)
  and writes to ``log_dir/<key>.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recipe_bringup.stack import ProcessDecl, command_prefix, ros_args
from recipe_common.ros.shm import clean_stale_fastdds_files

POLL_S = 0.1


class StackError(RuntimeError):
    """The stack could not start or a required process died; the message names the process and its log."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Child:
    decl: ProcessDecl
    log: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    logf: object = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    def __init__(self, procs: Sequence[ProcessDecl], config_dir: Path, log_dir: Path, *,
                 ready_timeout: float = 90.0, stop_timeout: float = 2.0,
                 env: dict[str, str] | None = None, interrupt: threading.Event | None = None) -> None:
        self.procs = list(procs)
        self.config_dir = Path(config_dir)
        self.log_dir = Path(log_dir)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.children: list[Child] = []
        self.killed: list[str] = []  # processes that needed SIGKILL
        self.interrupt = interrupt or threading.Event()  # set by the caller's signal handler: stop waiting

    # --- starting ---------------------------------------------------------------------------------------

    def command(self, decl: ProcessDecl) -> list[str]:
        return [*command_prefix(decl), sys.executable, "-m", decl.module, *ros_args(decl, self.config_dir)]

    def _spawn(self, child: Child) -> None:
        child.log.parent.mkdir(parents=True, exist_ok=True)
        child.logf = open(child.log, "a")
        child.proc = subprocess.Popen(self.command(child.decl), stdout=child.logf, stderr=subprocess.STDOUT,
                                      env={**self.env, **dict(child.decl.env)}, start_new_session=True)

    def start(self, probe: object) -> None:
        """Start every process in order, each ready before the next; ``probe`` answers graph questions
        (``ready(spec) -> bool``, a node of the caller's). Raises StackError (after stopping what started)."""
        try:
            for decl in self.procs:
                child = Child(decl, self.log_dir / f"{decl.key}.log")
                self.children.append(child)
                self._spawn(child)
                self._wait_ready(child, probe)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, child: Child, probe: object) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = child.proc.poll() if child.proc is not None else None
            if code is not None:
                raise StackError(f"{child.decl.key} exited with code {code} while starting; its log "
                                 f"({child.log}):\n{child.tail()}", code=2 if code == 2 else 1)
            if not child.decl.ready or probe.ready(child.decl.ready):  # type: ignore[attr-defined]
                return
            if self.interrupt.wait(POLL_S):
                raise StackError(f"interrupted while {child.decl.key} was starting", code=0)
        raise StackError(f"{child.decl.key} not ready ({child.decl.ready}) after {self.ready_timeout:.0f} s; "
                         f"its log ({child.log}):\n{child.tail()}")

    # --- running ----------------------------------------------------------------------------------------

    def check(self) -> None:
        """Restart optional processes that died; raise StackError when a required one did."""
        for child in self.children:
            if child.proc is None or child.alive():
                continue
            code = child.proc.returncode
            if child.decl.required or child.restarts >= child.decl.max_restarts:
                raise StackError(f"{child.decl.key} exited with code {code}; its log ({child.log}):\n"
                                 f"{child.tail()}", code=2 if code == 2 else 1)
            child.restarts += 1
            self._spawn(child)

    # --- stopping ---------------------------------------------------------------------------------------

    def stop(self) -> dict[str, int | None]:
        """Stop every child in reverse start order; returns their exit codes (idempotent)."""
        codes: dict[str, int | None] = {}
        for child in reversed(self.children):
            p = child.proc
            if p is not None and p.poll() is None:
                for sig, wait in ((signal.SIGINT, self.stop_timeout), (signal.SIGTERM, self.stop_timeout)):
                    try:
                        p.send_signal(sig)
                        p.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                else:
                    p.kill()
                    p.wait()
                    self.killed.append(child.decl.key)
                    clean_stale_fastdds_files()  # a killed participant cannot remove its /dev/shm files
            codes[child.decl.key] = None if p is None else p.returncode
            if child.logf is not None and not child.logf.closed:  # type: ignore[attr-defined]
                child.logf.close()  # type: ignore[attr-defined]
        return codes


class GraphProbe:
    """Readiness from the ROS graph, seen by a node of the supervisor's own process."""

    def __init__(self, node: object) -> None:
        self.node = node

    def ready(self, spec: str) -> bool:
        kind, _, name = spec.partition(":")
        n = self.node
        if kind == "topic":
            return n.count_publishers(name) > 0  # type: ignore[attr-defined]
        if kind == "service":
            return any(s == name for s, _ in n.get_service_names_and_types())  # type: ignore[attr-defined]
        raise ValueError(f"readiness {spec!r}: expected 'topic:/name' or 'service:/name'")
