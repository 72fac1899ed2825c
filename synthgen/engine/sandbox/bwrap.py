"""The default isolated backend: one long-lived bubblewrap sandbox per slot, the agent inside.

Isolation of the whole slot: new user-visible root made of read-only binds of the system and the
Python installation only (no /home, /root, /work, /etc secrets), tmpfs /tmp and /dev/shm, new
net (no interfaces but a down loopback), pid, ipc, uts and cgroup namespaces, an environment
built from nothing, a cgroup with pids and memory limits, and the syscall filter (seccomp.py),
which also refuses further user namespaces: bubblewrap's --disable-userns would need
--unshare-user, which as root maps a single uid and so takes away each job's own uid. Per job, inside: a fresh process tree
under an unprivileged uid with rlimits, killed and wiped afterwards (see sandbox/agent.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from synthgen.engine.sandbox import cgroup
from synthgen.engine.sandbox.job import Limits
from synthgen.engine.sandbox.pool import AgentPool, PipeChannel, SandboxUnavailable, agent_dir
from synthgen.engine.sandbox.seccomp import compiled_filter

INSIDE_AGENT_DIR = "/opt/synthgen"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs need from /etc; nothing that holds credentials.
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/alternatives", "/etc/localtime", "/etc/mime.types")
# Capabilities the agent keeps so it can drop each job to its own uid and clean up after it.
AGENT_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")


def job_uid(slot: int) -> int:
    """An unprivileged uid unique to this agent among live ones, so RLIMIT_NPROC is not shared."""
    return 200_000 + (os.getpid() * 1024 + slot % 1024) % 1_000_000


def _interpreter() -> tuple[str, str]:
    executable = os.path.realpath(sys.executable)
    return executable, os.path.realpath(sys.base_prefix)


def bwrap_argv(bwrap: str, slot: int) -> list[str]:
    executable, prefix = _interpreter()
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
    if os.geteuid() != 0:
        argv.append("--unshare-user")  # root keeps real uids so each job can drop to its own
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
    for path in ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    if not prefix.startswith("/usr/"):
        argv += _readable_bind(prefix, prefix)
    argv += _readable_bind(str(agent_dir()), INSIDE_AGENT_DIR)
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm", "--dir", "/var/tmp"]
    argv += ["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "SYNTHGEN_ISOLATED", "1",
             "--setenv", "SYNTHGEN_WORK_ROOT", "/tmp", "--setenv", "SYNTHGEN_SYSCALL_FILTER", compiled_filter().hex()]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL"]
        for capability in AGENT_CAPS:
            argv += ["--cap-add", capability]
        argv += ["--setenv", "SYNTHGEN_JOB_UID", str(job_uid(slot))]
    return argv + [executable, "-I", f"{INSIDE_AGENT_DIR}/agent.py"]


def _readable_bind(source: str, target: str) -> list[str]:
    """A read-only bind whose parent dirs the job's uid can traverse (bwrap makes them 0700)."""
    argv = []
    for ancestor in reversed(Path(target).parents[:-1]):
        argv += ["--perms", "0755", "--dir", str(ancestor)]
    return argv + ["--ro-bind", source, target]


def make_pool(slots: int, ceiling: Limits, recycle_after: int = 1000) -> AgentPool:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed (the default sandbox needs it): run `bash sandbox/setup.sh` "
            "or `apt-get install -y bubblewrap`"
        )
    compiled_filter()  # fails here, before any agent starts, where libseccomp is missing
    groups: dict[int, list[Path]] = {}

    def start(slot: int) -> PipeChannel:
        cgroup.remove(groups.pop(slot, []))
        name = f"{os.getpid()}-{slot}"
        # The agent and its bookkeeping need room beside the job's own ceiling.
        groups[slot], enter = cgroup.create(name, (ceiling.memory_mb + 256) * 2**20, ceiling.processes + 16)
        return PipeChannel(bwrap_argv(bwrap, slot), env={}, preexec=enter)

    def remove_groups() -> None:
        for dirs in groups.values():
            cgroup.remove(dirs)

    return AgentPool("bwrap", start, slots, recycle_after, on_close=remove_groups, syscall_filter=True)
