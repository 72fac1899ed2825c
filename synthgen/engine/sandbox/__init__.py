"""Running untrusted code: jobs, results, and the backends that run them (bwrap, docker, process).

`open_sandbox("auto")` picks bwrap where bubblewrap is installed, else a reachable Docker engine;
never the unisolated `process` backend, which must be asked for by name."""

from __future__ import annotations

import shutil

from synthgen.config.base import SANDBOX_BACKENDS
from synthgen.engine.sandbox.job import CaseOutcome, Job, Limits, Result
from synthgen.engine.sandbox.pool import AgentPool, SandboxUnavailable

__all__ = ["AgentPool", "CaseOutcome", "Job", "Limits", "Result", "SandboxUnavailable", "open_sandbox"]


def open_sandbox(backend: str = "auto", slots: int = 1, ceiling: Limits | None = None, recycle_after: int = 1000,
                 image: str | None = None) -> AgentPool:
    ceiling = ceiling or Limits()
    if backend == "auto":
        backend = "bwrap" if shutil.which("bwrap") else "docker"
    if backend == "bwrap":
        from synthgen.engine.sandbox import bwrap

        return bwrap.make_pool(slots, ceiling, recycle_after)
    if backend == "docker":
        from synthgen.engine.sandbox import docker

        return docker.make_pool(slots, ceiling, recycle_after, image=image)
    if backend == "process":
        from synthgen.engine.sandbox import process

        return process.make_pool(slots, recycle_after)
    raise ValueError(f"unknown sandbox backend {backend!r}; valid: {', '.join(SANDBOX_BACKENDS)}")
