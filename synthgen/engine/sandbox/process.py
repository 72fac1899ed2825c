"""Plain processes with rlimits: for trusted code only. No filesystem or network isolation."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

from synthgen.engine.sandbox.pool import AgentPool, PipeChannel, agent_dir

log = logging.getLogger(__name__)
WARNING = "sandbox backend 'process' runs code WITHOUT isolation (host files and network are reachable): trusted code only"


def make_pool(slots: int, recycle_after: int = 1000) -> AgentPool:
    log.warning(WARNING)
    print(f"warning: {WARNING}", file=sys.stderr)

    work_root = tempfile.mkdtemp(prefix="synthgen-sandbox-")
    os.chmod(work_root, 0o755)  # each job's uid must reach its own dir inside

    def start(slot: int) -> PipeChannel:
        # Jobs keep the caller's uid: trusted code, and a Python under a private home stays importable.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SYNTHGEN_WORK_ROOT": work_root}
        return PipeChannel([os.path.realpath(sys.executable), "-I", str(agent_dir() / "agent.py")], env=env)

    return AgentPool("process", start, slots, recycle_after, on_close=lambda: shutil.rmtree(work_root, True))
