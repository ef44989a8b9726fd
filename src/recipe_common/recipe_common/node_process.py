"""A ROS 2 node run in a subprocess, for tests and tools that need a node outside their own process.

Stopped with SIGINT, then SIGTERM, never SIGKILL: a killed Fast DDS participant leaves its
shared-memory files in /dev/shm. Output goes to a log file that stays readable after the process ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class NodeProcess:
    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, stop_timeout: float = 10.0) -> None:
        self.log = Path(log)
        self.stop_timeout = stop_timeout
        self._logf = open(self.log, "w")
        self.proc = subprocess.Popen(list(args), stdout=self._logf, stderr=subprocess.STDOUT,
                                     env=os.environ.copy() if env is None else env, cwd=cwd)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> int:
        """SIGINT, then SIGTERM after ``stop_timeout`` s; returns the exit code (idempotent)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(timeout=10)
        if not self._logf.closed:
            self._logf.close()
        return self.proc.returncode
