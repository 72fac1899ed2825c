"""The syscall filter, on every isolated backend: each kernel surface a container escape would
use is refused to the job with an error (EPERM, or ENOSYS for clone3), never by killing it; code
that needs none of it runs as before; Docker's own hardening is in force beside it."""

from __future__ import annotations

import json

import pytest

from synthgen.engine.sandbox import Job, Limits, open_sandbox
from tests.sandbox_engines import ISOLATED_BACKENDS, backend_options

LIMITS = Limits(wall_s=5, cpu_s=5, memory_mb=256, processes=24)

# Each probe makes one raw syscall through libc and prints [return value, errno].
PROBE = """
import ctypes, ctypes.util, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {name: number for name, number in json.loads(sys.argv[1]).items()}
def call(name, *args):
    ctypes.set_errno(0)
    value = libc.syscall(NR[name], *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return [value, ctypes.get_errno()]
results = {}
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x20000, 0x40000000, 17
results["unshare(CLONE_NEWUSER)"] = call("unshare", CLONE_NEWUSER)
results["unshare(CLONE_NEWUSER|CLONE_NEWNS)"] = call("unshare", CLONE_NEWUSER | CLONE_NEWNS)
results["clone(CLONE_NEWNET)"] = call("clone", CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)
results["clone3"] = call("clone3", 0, 0)
results["mount"] = call("mount", b"none", b"/tmp", b"tmpfs", 0, 0)
results["umount2"] = call("umount2", b"/proc", 0)
results["pivot_root"] = call("pivot_root", b"/tmp", b"/tmp")
results["ptrace(PTRACE_ATTACH)"] = call("ptrace", 16, os.getppid(), 0, 0)
results["process_vm_readv"] = call("process_vm_readv", os.getppid(), 0, 0, 0, 0, 0)
results["keyctl"] = call("keyctl", 0, 0, 0, 0, 0)
results["add_key"] = call("add_key", b"user", b"k", b"v", 1, 0xFFFFFFFD)
results["bpf"] = call("bpf", 0, 0, 0)
results["perf_event_open"] = call("perf_event_open", 0, 0, -1, -1, 0)
results["userfaultfd"] = call("userfaultfd", 0)
results["io_uring_setup"] = call("io_uring_setup", 1, 0)
results["init_module"] = call("init_module", 0, 0, b"")
results["kexec_load"] = call("kexec_load", 0, 0, 0, 0)
results["open_by_handle_at"] = call("open_by_handle_at", -100, 0, 0)
print(json.dumps(results))
"""
NUMBERS = {  # x86_64
    "unshare": 272, "clone": 56, "clone3": 435, "mount": 165, "umount2": 166, "pivot_root": 155, "ptrace": 101,
    "process_vm_readv": 310, "keyctl": 250, "add_key": 248, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "io_uring_setup": 425, "init_module": 175, "kexec_load": 246, "open_by_handle_at": 304,
}
EPERM, ENOSYS = 1, 38


@pytest.fixture(scope="module", params=ISOLATED_BACKENDS)
def pool(request):
    with open_sandbox(request.param, slots=1, ceiling=LIMITS, **backend_options(request.param)) as sandbox:
        sandbox.warm_up()
        yield sandbox


def test_every_escape_surface_is_refused_with_an_error(pool):
    result = pool.run(Job(files={"probe.py": PROBE}, python="probe.py", args=[json.dumps(NUMBERS)], limits=LIMITS))
    assert result.status == "passed", result  # nothing was killed
    outcomes = json.loads(result.stdout)
    assert outcomes.pop("clone3") == [-1, ENOSYS]  # libc then falls back to clone, whose flags the filter reads
    refused = {name: value for name, value in outcomes.items() if value != [-1, EPERM]}
    assert not refused, refused


def test_ordinary_code_still_runs_threads_processes_and_tests(pool):
    code = (
        "import threading, subprocess, sys, multiprocessing\n"
        "def add(a, b):\n    return a + b\n"
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "print(subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True).stdout.strip())\n"
    )
    result = pool.run(Job.with_tests(code, "def test_add():\n    assert add(2, 3) == 5\n", LIMITS))
    assert result.status == "passed", result
    assert "thread" in result.stdout and "42" in result.stdout
    calls = pool.run(Job.with_calls("def double(x):\n    return 2 * x\n", ["double(2)", "double(-1)"],
                                    "def double(x):\n    return x + x\n", LIMITS))
    assert calls.status == "passed", calls


def test_the_filter_and_no_new_privileges_are_in_force(pool):
    result = pool.run(Job(files={"s.py": "print(open('/proc/self/status').read())"}, python="s.py", limits=LIMITS))
    status = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # filter mode
    assert int(status["CapEff"].strip(), 16) == 0


def test_docker_keeps_its_default_profile_no_new_privileges_and_dropped_capabilities():
    options = backend_options("docker")
    with open_sandbox("docker", slots=1, ceiling=LIMITS, **options) as sandbox:
        sandbox.warm_up()
        container = sandbox.slots[0].channel.container
        container.reload()
        host = container.attrs["HostConfig"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert not any(opt.startswith("seccomp") for opt in host["SecurityOpt"] or []), "the default profile stays"
        assert host["CapDrop"] == ["ALL"]
        assert set(host["CapAdd"]) <= {"SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER"}
        result = sandbox.run(Job(files={"s.py": "print(open('/proc/self/status').read())"}, python="s.py", limits=LIMITS))
        assert "Seccomp_filters:\t2" in result.stdout, "the engine's profile and ours, stacked"
