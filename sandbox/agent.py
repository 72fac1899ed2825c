"""The in-sandbox agent: runs one job at a time, each in a fresh process tree, for as long as it lives.

It is started once per sandbox slot (inside bwrap, inside a Docker container, or as a plain
process) and answers framed JSON requests on stdin with framed JSON results on stdout, so that a
job costs a fork instead of a sandbox start. Standard library only: it runs on whatever Python the
sandbox has.

Per job it:
- writes the job's files into a fresh work directory owned by the job user;
- forks; the child drops to an unprivileged uid (when the agent may), sets rlimits and
  no_new_privs, gets an environment built from nothing, and either runs a Python entry in the
  already-warm interpreter or execs a command;
- collects stdout/stderr up to a cap, stops at the wall-time limit or the output limit;
- kills every process the job left behind (setsid children included: the agent is a subreaper),
  reaps them, and wipes every writable place, so two jobs in one agent share nothing.
"""

from __future__ import annotations

import ast  # noqa: F401 - ast, inspect, unittest, importlib: preloaded for the test harness's jobs
import importlib
import atexit
import ctypes
import inspect  # noqa: F401
import json
import os
import pkgutil  # noqa: F401 - runpy imports it per run; preloaded once here
import resource
import runpy
import select
import shutil
import signal
import struct
import sys
import threading
import time
import traceback
import unittest  # noqa: F401

PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
M_ARENA_MAX = -8
HEADER = struct.Struct(">I")
# Where jobs may write; every entry is wiped after each job.
SCRATCH_DIRS = ("/tmp", "/dev/shm", "/var/tmp")
GRACE_AFTER_EXIT_S = 0.05
AGENT_HOME = os.path.dirname(os.path.abspath(__file__))

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> None:
    _libc.prctl(option, value, 0, 0, 0)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_syscall_filter(program: bytes) -> None:
    """Load a classic-BPF seccomp filter on this process; every job inherits it and cannot drop
    it. no_new_privs first: the kernel requires it of a process without CAP_SYS_ADMIN."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def read_frame(stream) -> dict | None:
    """One framed request; None at end of input. Reads exactly, as a pipe may return less."""
    header = _read(stream, HEADER.size)
    if len(header) < HEADER.size:
        return None
    return json.loads(_read(stream, HEADER.unpack(header)[0]))


def _read(stream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def write_frame(stream, message: dict) -> None:
    body = json.dumps(message).encode()
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


class Agent:
    def __init__(self, job_uid: int | None, work_root: str, isolated: bool):
        self.job_uid = job_uid
        self.work_root = work_root
        # Inside a private pid namespace every other process is the job's: kill(-1) reaches them all.
        self.isolated = isolated
        self.jobs = 0

    # -- one job -------------------------------------------------------------------------------
    def run(self, job: dict) -> dict:
        self.jobs += 1
        limits = job.get("limits", {})
        work = os.path.join(self.work_root, f"job-{os.getpid()}-{self.jobs}")
        os.makedirs(work, mode=0o700)
        try:
            self._write_files(work, job.get("files", {}))
            return self._execute(job, limits, work)
        finally:
            self._kill_leftovers()
            self._wipe(work)

    def _write_files(self, work: str, files: dict[str, str]) -> None:
        for name, content in files.items():
            path = os.path.normpath(os.path.join(work, name))
            if not path.startswith(work + os.sep):
                raise ValueError(f"file name escapes the work dir: {name!r}")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)
        if self.job_uid is not None:
            for root, dirs, names in os.walk(work):
                for entry in [root, *(os.path.join(root, n) for n in dirs + names)]:
                    os.chown(entry, self.job_uid, self.job_uid)

    def _execute(self, job: dict, limits: dict, work: str) -> dict:
        stdin_r, stdin_w = os.pipe()
        pipes = {"stdout": os.pipe(), "stderr": os.pipe()}
        if job.get("report"):
            pipes["report"] = os.pipe()  # fd 3 in the job: a channel its output cannot flood
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._child(job, limits, work, stdin_r, [w for _, w in pipes.values()])
        os.close(stdin_r)
        for _, write_end in pipes.values():
            os.close(write_end)
        readers = {read_end: name for name, (read_end, _) in pipes.items()}
        collected = self._collect(pid, job.get("stdin", "").encode(), stdin_w, readers, limits, started)
        collected["duration_s"] = round(time.monotonic() - started, 4)
        return collected

    def _child(self, job, limits, work, stdin_r, outputs) -> None:
        try:
            os.setsid()
            os.dup2(stdin_r, 0)
            for target, fd in enumerate(outputs, start=1):
                os.dup2(fd, target)
            os.closerange(len(outputs) + 1, 65536)
            os.chdir(work)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _set_limits(limits)
            if self.job_uid is not None:
                os.setgroups([])
                os.setgid(self.job_uid)
                os.setuid(self.job_uid)
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            os.umask(0o077)
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
            env.update(job.get("env", {}))
            entry = job.get("python")
            if entry and entry.startswith("@"):
                entry = os.path.join(AGENT_HOME, entry[1:])
            if entry:
                _run_python(entry, job.get("args", []), env, work)
            argv = job["argv"]
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:  # noqa: BLE001 - the child must never return into the agent loop
            os.write(2, f"sandbox: cannot start the job: {exc}\n".encode())
            os._exit(127)

    def _collect(self, pid, stdin_bytes, stdin_w, readers, limits, started) -> dict:
        """Feed stdin, capture outputs, and wait for the exit, all in one select loop.

        The loop ends when the job has exited and its outputs are closed, or a little after the
        exit if a leftover process still holds them, or at a limit."""
        deadline = started + float(limits.get("wall_s", 10))
        cap = int(limits.get("output_bytes", 65536))
        captured = {fd: bytearray() for fd in readers}
        total = dict.fromkeys(readers, 0)
        open_fds = set(readers)
        exit_fd = os.pidfd_open(pid)  # readable once the job has exited: no polling
        pending = memoryview(stdin_bytes)
        writers = [stdin_w]
        limit_hit, status, rusage, exited_at = None, None, None, None
        while exited_at is None or open_fds:
            now = time.monotonic()
            if now >= deadline:
                limit_hit = "timeout"
                break
            if exited_at is not None and now - exited_at > GRACE_AFTER_EXIT_S:
                break  # a leftover process may hold the pipes open forever
            waiting = [*open_fds, exit_fd] if exited_at is None else list(open_fds)
            limit = deadline - now if exited_at is None else GRACE_AFTER_EXIT_S
            readable, writable, _ = select.select(waiting, writers, [], limit)
            if writable:
                try:
                    pending = pending[os.write(stdin_w, pending[:65536]) :]
                except OSError:
                    pending = pending[:0]
                if not pending:
                    os.close(stdin_w)
                    writers = []
            for fd in readable:
                if fd == exit_fd:
                    _, status, rusage = os.wait4(pid, 0)
                    exited_at = time.monotonic()
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                    continue
                total[fd] += len(chunk)
                captured[fd] += chunk[: max(0, cap - len(captured[fd]))]
            if sum(total.values()) > 4 * cap:
                limit_hit = "output"
                break
        os.close(exit_fd)
        if writers:
            os.close(stdin_w)
        if exited_at is None:
            _kill(pid)
            _, status, rusage = os.wait4(pid, 0)
        result = {
            "exit_code": os.waitstatus_to_exitcode(status),
            "limit_hit": limit_hit,
            "cpu_s": round(rusage.ru_utime + rusage.ru_stime, 4),
            "max_rss_kb": rusage.ru_maxrss,
        }
        for fd, name in readers.items():
            os.close(fd)
            result[name] = captured[fd].decode("utf-8", "replace")
            result[f"{name}_bytes"] = total[fd]
        return result

    # -- between jobs --------------------------------------------------------------------------
    def _kill_leftovers(self) -> None:
        """Kill and reap every process the job left behind, however it detached itself."""
        for _ in range(200):
            if self.isolated:
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                for pid in _descendants(os.getpid()):
                    _kill(pid)
            if not _reap_all():
                return
            time.sleep(0.001)

    def _wipe(self, work: str) -> None:
        shutil.rmtree(work, ignore_errors=True)
        if not self.isolated:
            return
        for scratch in SCRATCH_DIRS:
            try:
                names = os.listdir(scratch)
            except OSError:
                continue
            for name in names:
                path = os.path.join(scratch, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass


def _set_limits(limits: dict) -> None:
    memory = int(limits.get("memory_mb", 512)) * 1024 * 1024
    cpu = int(limits.get("cpu_s", 10))
    for name, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_NPROC, int(limits.get("processes", 32))),
        (resource.RLIMIT_FSIZE, int(limits.get("file_bytes", 16 * 1024 * 1024))),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(name, (value, value))
    # SIGXCPU at the soft limit tells "out of CPU time" apart from a plain SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _run_python(entry: str, args: list[str], env: dict, work: str) -> None:
    """Run a Python file in this already-started interpreter: the fast path, no exec."""
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [entry, *args]
    sys.path[0:0] = [work, os.path.dirname(os.path.abspath(entry))]
    sys.stdin = open(0, "r", encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
    code = 0
    try:
        runpy.run_path(entry, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - report like the interpreter would
        traceback.print_exc()
        code = 1
    # What interpreter shutdown would do: wait for non-daemon threads, run atexit handlers.
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = code or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(code)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap_all() -> bool:
    """Reap finished children; True while some child of ours still exists."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parents[int(name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found.extend(frontier)
    return found


def main() -> None:
    job_uid = int(os.environ["SYNTHGEN_JOB_UID"]) if os.environ.get("SYNTHGEN_JOB_UID") else None
    work_root = os.environ.get("SYNTHGEN_WORK_ROOT", "/tmp")
    isolated = os.environ.get("SYNTHGEN_ISOLATED") == "1"
    syscall_filter = bytes.fromhex(os.environ.get("SYNTHGEN_SYSCALL_FILTER", ""))
    for name in ("SYNTHGEN_JOB_UID", "SYNTHGEN_WORK_ROOT", "SYNTHGEN_ISOLATED", "SYNTHGEN_SYSCALL_FILTER"):
        os.environ.pop(name, None)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    # Jobs may run under the agent's own uid (bwrap): not dumpable, its /proc/<pid>/fd and memory
    # are closed to them, so no job can open the pipe a test report travels on.
    prctl(PR_SET_DUMPABLE, 0)
    # glibc reserves 64 MB of address space per thread arena: under RLIMIT_AS a job could not
    # start a handful of threads. Two arenas are plenty for test code.
    _libc.mallopt(M_ARENA_MAX, 2)
    if job_uid is not None and os.geteuid() != 0:
        job_uid = None
    if isolated and job_uid is not None:
        # Only the agent may create entries in the scratch dirs; a job writes in its own dir.
        for scratch in SCRATCH_DIRS:
            if os.path.isdir(scratch):
                os.chmod(scratch, 0o755)
    # The harness's own modules, warm too: a test job then costs a fork, not an import.
    sys.path.insert(0, AGENT_HOME)
    for name in ("wire", "solution_side", "tests_side"):
        importlib.import_module(name)
    sys.path.remove(AGENT_HOME)
    agent = Agent(job_uid, work_root, isolated)
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "wb")
    # The jobs never see the protocol pipes: stdin/stdout of the agent point at nothing.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    hello = {"ready": True, "pid": os.getpid(), "uid": job_uid, "python": sys.version.split()[0], "syscall_filter": False}
    if syscall_filter:
        try:
            install_syscall_filter(syscall_filter)
            hello["syscall_filter"] = True
        except OSError as exc:
            hello = {"ready": False, "error": f"the syscall filter could not be installed: {exc}"}
    write_frame(replies, hello)
    while True:
        request = read_frame(requests)
        if request is None:
            return
        try:
            reply = agent.run(request)
        except Exception as exc:  # noqa: BLE001 - a bad job must not kill the agent
            reply = {"agent_error": f"{type(exc).__name__}: {exc}"}
        write_frame(replies, reply)


if __name__ == "__main__":
    main()
