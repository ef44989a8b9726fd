"""Remove the shared-memory files of Fast DDS participants that died without closing them.

A participant that exits normally deletes its files under /dev/shm; one ended by SIGKILL (a hung process
that a supervisor or test helper had to kill) leaves them behind, 4-12 files per process, for ever. Fast DDS
marks every segment and port it has open with an exclusive ``flock`` on a companion lock file
(``fastdds_<id>_el`` / ``_sl``, ``fastdds_port<N>_el`` / ``_sl``): the kernel drops that lock when the holder
dies, so a lock file nobody holds names a dead owner. That is the rule of Fast DDS's own ``fastdds shm
clean`` (which needs psutil, absent here); files without a lock file are left alone.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

SHM_DIR = Path("/dev/shm")
_SEGMENT_LOCK = re.compile(r"^fastdds_[0-9a-z]{16}_(el|sl)$")
_PORT_LOCK = re.compile(r"^fastdds_port\d{1,5}_(el|sl)$")


def _held(path: Path) -> bool:
    """Whether a live process holds the lock on ``path`` (an error reading it counts as held: keep it)."""
    try:
        with open(path, "ab") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        return False
    except OSError:
        return True


def clean_stale_fastdds_files(shm_dir: Path = SHM_DIR) -> list[Path]:
    """Delete the segments and ports of dead participants; returns the files removed."""
    try:
        names = os.listdir(shm_dir)
    except FileNotFoundError:
        return []
    removed: list[Path] = []
    for name in names:
        segment, port = _SEGMENT_LOCK.match(name), _PORT_LOCK.match(name)
        if not (segment or port):
            continue
        lock = shm_dir / name
        if not lock.exists() or _held(lock):
            continue
        base = name[:-3]
        files = [lock, shm_dir / base]
        if port:
            files.append(shm_dir / f"sem.{base}_mutex")
        for f in files:
            try:
                f.unlink()
                removed.append(f)
            except FileNotFoundError:
                pass
    return removed
