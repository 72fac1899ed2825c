"""A cgroup per sandbox agent (pids + memory), so a job's whole tree is bounded together.

Best effort: it needs write access to the cgroup hierarchy (root, or a delegated subtree). Where
that is missing the rlimits set per job still apply and the backend says so once."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")


def create(name: str, memory_bytes: int, pids: int) -> tuple[list[Path], Callable[[], None] | None]:
    """Make the cgroup(s); return their dirs and a function that moves the calling process in."""
    try:
        dirs = _v2(name, memory_bytes, pids) if (ROOT / "cgroup.controllers").exists() else _v1(name, memory_bytes, pids)
    except OSError as exc:
        log.info("no cgroup for the sandbox (%s); per-job rlimits still apply", exc)
        return [], None
    procs = [str(directory / "cgroup.procs") for directory in dirs]

    def enter() -> None:  # runs in the child between fork and exec: no logging, no allocation-heavy work
        pid = str(os.getpid())
        for path in procs:
            with open(path, "w") as handle:
                handle.write(pid)

    return dirs, enter


def remove(dirs: list[Path], wait_s: float = 2.0) -> None:
    """Remove the groups once their (killed) processes are gone; the kernel frees them lazily."""
    deadline = time.monotonic() + wait_s
    for directory in dirs:
        while True:
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    log.info("cgroup %s still busy; left for the kernel", directory)
                    break
                time.sleep(0.02)


def _v1(name: str, memory_bytes: int, pids: int) -> list[Path]:
    memory = ROOT / "memory" / "synthgen" / name
    pid_group = ROOT / "pids" / "synthgen" / name
    for directory in (memory, pid_group):
        directory.mkdir(parents=True, exist_ok=True)
    (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
    _try_write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
    (pid_group / "pids.max").write_text(str(pids))
    return [memory, pid_group]


def _v2(name: str, memory_bytes: int, pids: int) -> list[Path]:
    parent = ROOT / "synthgen"
    parent.mkdir(exist_ok=True)
    for level in (ROOT, parent):
        _try_write(level / "cgroup.subtree_control", "+memory +pids")
    group = parent / name
    group.mkdir(exist_ok=True)
    (group / "memory.max").write_text(str(memory_bytes))
    _try_write(group / "memory.swap.max", "0")
    (group / "pids.max").write_text(str(pids))
    return [group]


def _try_write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError:
        pass
