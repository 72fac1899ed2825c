"""The syscall filter every sandbox agent installs on itself before it runs any job (so every job
inherits it): the kernel surface that untrusted test code never needs and container escapes
use. Each refused call fails with EPERM (clone3 with ENOSYS, so that libc falls back to clone,
whose flags the filter can read); nothing is killed.

Compiled on the host by libseccomp (through ctypes: its Python binding is not on PyPI, and the
shared library is in every Debian/Ubuntu/Fedora base system), exported as classic BPF and handed
to the agent, which loads it with prctl; on Docker it stacks on the engine's default profile."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import tempfile

from synthgen.engine.sandbox.pool import SandboxUnavailable

DENIED = (
    # new namespaces, and joining or building other mount trees
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    # other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev",
    # kernel keyrings, eBPF, perf, userfaultfd, io_uring
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # kernels and modules
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    # file handles that bypass the mount namespace
    "open_by_handle_at", "name_to_handle_at",
)
NAMESPACE_FLAGS = {
    "CLONE_NEWTIME": 0x80, "CLONE_NEWNS": 0x20000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000,
}

_ACT_ALLOW = 0x7FFF0000
_ATTR_ACT_BADARCH = 2
_CMP_MASKED_EQ = 7


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCompare(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class SeccompUnavailable(SandboxUnavailable):
    """libseccomp is missing or refused the filter: no isolated sandbox without it."""


@functools.cache
def compiled_filter() -> bytes:
    """The filter as a classic BPF program (what PR_SET_SECCOMP and `bwrap --seccomp` take)."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SeccompUnavailable(f"the syscall filter needs libseccomp ({exc}): apt-get install libseccomp2") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCompare)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    context = lib.seccomp_init(_ACT_ALLOW)
    if not context:
        raise SeccompUnavailable("seccomp_init failed")
    try:
        # A syscall of another ABI (i386 via int 0x80, x32) would slip past a native filter.
        _check(lib.seccomp_attr_set(context, _ATTR_ACT_BADARCH, _errno_action(errno.EPERM)), "attr")
        refuse = _errno_action(errno.EPERM)
        for syscall in DENIED:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number >= 0:  # a syscall this architecture does not have needs no rule
                _check(lib.seccomp_rule_add_array(context, refuse, number, 0, None), syscall)
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag in NAMESPACE_FLAGS.values():
            compare = _ArgCompare(0, _CMP_MASKED_EQ, flag, flag)
            _check(lib.seccomp_rule_add_array(context, refuse, clone, 1, ctypes.byref(compare)), "clone")
        clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
        if clone3 >= 0:  # its flags sit behind a pointer: no filter can read them
            _check(lib.seccomp_rule_add_array(context, _errno_action(errno.ENOSYS), clone3, 0, None), "clone3")
        with tempfile.TemporaryFile() as sink:
            _check(lib.seccomp_export_bpf(context, sink.fileno()), "export")
            sink.seek(0)
            return sink.read()
    finally:
        lib.seccomp_release(context)


def _check(result: int, what: str) -> None:
    if result < 0:
        raise SeccompUnavailable(f"libseccomp refused the rule for {what}: {os.strerror(-result)}")
