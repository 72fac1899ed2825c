"""The production backend: a pool of long-lived hardened containers, the agent inside each.

A container per slot: no network, read-only root, tmpfs scratch, all capabilities dropped but the
few the agent needs to drop each job to its own uid, no-new-privileges, the engine's default
seccomp profile with synthgen's syscall filter stacked on it (seccomp.py), pids and memory limits,
no logging driver (job output never reaches the engine's buffers: the agent caps it). The agent
is bind-mounted read-only, so the image is any Debian with Python (`sandbox/build_image.sh`)."""

from __future__ import annotations

import logging
import os
import socket
import struct

from synthgen.engine.sandbox.bwrap import AGENT_CAPS, INSIDE_AGENT_DIR, job_uid
from synthgen.engine.sandbox.job import Limits
from synthgen.engine.sandbox.pool import AgentLost, AgentPool, FrameBuffer, SandboxUnavailable, agent_dir, encode, next_frame
from synthgen.engine.sandbox.seccomp import compiled_filter

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "synthgen-sandbox:bookworm"
LABEL = "synthgen.sandbox"
STREAM_HEADER = struct.Struct(">BxxxI")  # Docker's multiplexed attach framing


class ContainerChannel:
    def __init__(self, client, image: str, slot: int, ceiling: Limits):
        from docker.types import LogConfig

        memory = f"{ceiling.memory_mb + 256}m"
        self.container = client.containers.create(
            image,
            command=["python3", "-I", f"{INSIDE_AGENT_DIR}/agent.py"],
            stdin_open=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=256m,mode=755", "/dev/shm": "rw,nosuid,nodev,size=64m",
                   "/var/tmp": "rw,nosuid,nodev,size=16m,mode=755"},
            cap_drop=["ALL"],
            cap_add=[cap.removeprefix("CAP_") for cap in AGENT_CAPS],
            security_opt=["no-new-privileges"],
            pids_limit=ceiling.processes + 16,
            mem_limit=memory,
            memswap_limit=memory,
            environment={"SYNTHGEN_ISOLATED": "1", "SYNTHGEN_WORK_ROOT": "/tmp", "SYNTHGEN_JOB_UID": str(job_uid(slot)),
                         "SYNTHGEN_SYSCALL_FILTER": compiled_filter().hex()},
            volumes={str(agent_dir()): {"bind": INSIDE_AGENT_DIR, "mode": "ro"}},
            log_config=LogConfig(type="none"),
            labels={LABEL: str(os.getpid())},
            hostname="sandbox",
        )
        attached = self.container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self.socket: socket.socket = getattr(attached, "_sock", attached)
        self.container.start()
        self._frames = FrameBuffer()
        self._pending = bytearray()
        self._stderr = bytearray()

    def send(self, message: dict) -> None:
        try:
            self.socket.sendall(encode(message))
        except OSError as exc:
            raise AgentLost(f"container gone: {exc}") from exc

    def receive(self, timeout: float) -> dict:
        return next_frame(self._frames, timeout, self._read_more)

    def _read_more(self, seconds: float) -> None:
        self.socket.settimeout(seconds)
        try:
            chunk = self.socket.recv(1 << 20)
        except TimeoutError:
            return
        except OSError as exc:
            raise AgentLost(f"container connection lost: {exc}") from exc
        if not chunk:
            tail = self._stderr[-1500:].decode("utf-8", "replace")
            raise AgentLost(f"container agent exited; {tail}")
        self._demultiplex(chunk)

    def _demultiplex(self, chunk: bytes) -> None:
        self._pending += chunk
        while len(self._pending) >= STREAM_HEADER.size:
            stream, size = STREAM_HEADER.unpack_from(self._pending)
            if len(self._pending) < STREAM_HEADER.size + size:
                return
            payload = self._pending[STREAM_HEADER.size : STREAM_HEADER.size + size]
            del self._pending[: STREAM_HEADER.size + size]
            if stream == 1:
                self._frames.feed(payload)
            else:
                self._stderr.extend(payload)

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            try:
                self.container.remove(force=True)
            except Exception as exc:  # noqa: BLE001 - the engine may already have removed it
                log.debug("removing sandbox container: %s", exc)


def engine():
    """A connected Docker client, or SandboxUnavailable saying why not."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any failure here means: no engine to use
        raise SandboxUnavailable(f"no Docker engine reachable ({exc}); start dockerd or use --backend bwrap") from exc


def make_pool(slots: int, ceiling: Limits, recycle_after: int = 1000, image: str | None = None) -> AgentPool:
    client = engine()
    image = image or os.environ.get("SYNTHGEN_SANDBOX_IMAGE", DEFAULT_IMAGE)
    try:
        client.images.get(image)
    except Exception as exc:  # noqa: BLE001
        raise SandboxUnavailable(f"sandbox image {image!r} not found: build it with `bash sandbox/build_image.sh {image}`") from exc
    compiled_filter()  # fails here, before any container starts, where libseccomp is missing
    _remove_orphans(client)
    return AgentPool("docker", lambda slot: ContainerChannel(client, image, slot, ceiling), slots, recycle_after,
                     syscall_filter=True)


def _remove_orphans(client) -> None:
    """Containers of sandbox pools whose process died without closing them (a killed worker)."""
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        owner = container.labels.get(LABEL, "")
        if owner.isdigit() and not _alive(int(owner)):
            try:
                container.remove(force=True)
            except Exception as exc:  # noqa: BLE001 - already going away
                log.debug("removing orphaned sandbox container %s: %s", container.short_id, exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
