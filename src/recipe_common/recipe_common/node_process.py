"""A ROS 2 node run in a subprocess, for tests and tools that need a node outside their own process.

Stopped with SIGINT, then SIGTERM: a Fast DDS participant killed with SIGKILL leaves its shared-memory
files in /dev/shm. But a helper must never leave a process behind either (a hung node once kept
running for 13 minutes after its test), so if neither signal ends it, ``stop()`` asks the process
for its Python stacks (SIGABRT: faulthandler, which the node mains enable, prints them to the log),
then SIGKILLs it, and reports that in ``escalated``. The process is also stopped when the object is
garbage-collected or the interpreter exits. Output goes to a log file that stays readable afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import weakref
from collections.abc import Sequence
from pathlib import Path

from recipe_common.ros.shm import clean_stale_fastdds_files


class NodeProcess:
    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, stop_timeout: float = 10.0) -> None:
        self.log = Path(log)
        self.stop_timeout = stop_timeout
        self.escalated: str | None = None  # "SIGTERM" or "SIGKILL" when SIGINT was not enough
        self._logf = open(self.log, "w")
        env = os.environ.copy() if env is None else dict(env)
        env.setdefault("PYTHONFAULTHANDLER", "1")  # a SIGABRT before the SIGKILL prints the stacks
        self.proc = subprocess.Popen(list(args), stdout=self._logf, stderr=subprocess.STDOUT, env=env,
                                     cwd=cwd)
        # runs if the object is dropped without stop(), or at interpreter exit (finalize's atexit)
        self._finalizer = weakref.finalize(self, _kill_quietly, self.proc, self._logf)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> int:
        """SIGINT; SIGTERM after ``stop_timeout`` s; stacks + SIGKILL after as long again; the exit code.

        Idempotent. A process that needed SIGTERM or SIGKILL is named in ``escalated`` (and its exit
        code is not 0), so a test asserting ``stop() == 0`` fails instead of hiding a hung shutdown.
        """
        if self.proc.poll() is None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                if sig != signal.SIGINT:
                    self.escalated = signal.Signals(sig).name
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=self.stop_timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self.escalated = "SIGKILL"
                self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
                try:
                    self.proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                clean_stale_fastdds_files()  # a participant ended by SIGKILL cannot remove its /dev/shm files
        self._finalizer.detach()
        if not self._logf.closed:
            self._logf.close()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_quietly(proc: subprocess.Popen, logf) -> None:
    """Last resort when a NodeProcess is dropped without stop(): SIGINT, then SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            clean_stale_fastdds_files()
    if not logf.closed:
        logf.close()
