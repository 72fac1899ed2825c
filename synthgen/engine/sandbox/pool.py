"""A pool of warm sandbox agents: one job at a time per agent, agents restarted on any anomaly.

Backends differ only in how an agent is started (bwrap, a Docker container, a plain process);
they hand the pool a function that starts one and returns its `AgentChannel`."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import queue
import select
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from synthgen.engine.sandbox.job import Job, Result, agent_request, classify

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
AGENT_SOURCE = Path(__file__).resolve().parents[3] / "sandbox"
START_TIMEOUT_S = 30.0
# Beyond the job's own wall time: what the agent may need to kill, reap and wipe.
REPLY_SLACK_S = 10.0


class SandboxUnavailable(Exception):
    """The backend cannot run here (missing tool, engine down, agent does not start)."""


class AgentLost(Exception):
    """The agent died or stopped answering; its slot is restarted."""


class AgentChannel(Protocol):
    def send(self, message: dict) -> None: ...

    def receive(self, timeout: float) -> dict: ...

    def close(self) -> None: ...


def agent_dir() -> Path:
    if not (AGENT_SOURCE / "agent.py").is_file():
        raise SandboxUnavailable(f"the sandbox agent is missing: {AGENT_SOURCE / 'agent.py'} (install synthgen from its repository)")
    return AGENT_SOURCE


def encode(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


class FrameBuffer:
    """Bytes from the agent in, whole frames out."""

    def __init__(self):
        self._data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._data += chunk

    def pop(self) -> dict | None:
        if len(self._data) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._data)
        if len(self._data) < HEADER.size + size:
            return None
        body = bytes(self._data[HEADER.size : HEADER.size + size])
        del self._data[: HEADER.size + size]
        return json.loads(body)


def next_frame(frames: FrameBuffer, timeout: float, read_more: Callable[[float], None]) -> dict:
    """The agent's next whole frame. `read_more(seconds)` waits at most that long for bytes and
    feeds them to `frames`; it raises AgentLost when the agent is gone."""
    deadline = time.monotonic() + timeout
    while (frame := frames.pop()) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AgentLost(f"agent silent for {timeout:.0f} s")
        read_more(remaining)
    return frame


class PipeChannel:
    """An agent as a child process speaking frames over its stdin/stdout."""

    def __init__(self, argv: list[str], env: dict[str, str], preexec: Callable[[], None] | None = None):
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            preexec_fn=preexec, start_new_session=True, bufsize=0,
        )
        self._frames = FrameBuffer()

    def send(self, message: dict) -> None:
        try:
            self.process.stdin.write(encode(message))
        except (BrokenPipeError, OSError) as exc:
            raise AgentLost(f"agent gone: {exc}; {self.stderr_tail()}") from exc

    def receive(self, timeout: float) -> dict:
        return next_frame(self._frames, timeout, self._read_more)

    def _read_more(self, seconds: float) -> None:
        fd = self.process.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], seconds)
        if readable:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                self.process.wait()
                raise AgentLost(f"agent exited with {self.process.returncode}; {self.stderr_tail()}")
            self._frames.feed(chunk)

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-1500:].decode("utf-8", "replace").strip()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            stream.close()


# Slot numbers are unique in the process, not just in a pool: they name the slot's cgroup and its
# job uid, which two pools of one process must not share.
_SLOT_NUMBERS = itertools.count()


class _Slot:
    def __init__(self, index: int):
        self.index = index
        self.channel: AgentChannel | None = None
        self.jobs = 0


class AgentPool:
    """Runs jobs on `slots` warm agents; `start(slot_number)` makes a ready agent."""

    def __init__(
        self,
        backend: str,
        start: Callable[[int], AgentChannel],
        slots: int,
        recycle_after: int = 1000,
        on_close: Callable[[], None] | None = None,
        syscall_filter: bool = False,
    ):
        self.backend = backend
        self.syscall_filter = syscall_filter
        self._on_close = on_close
        self._start = start
        self.recycle_after = recycle_after
        self.slots = [_Slot(next(_SLOT_NUMBERS)) for _ in range(max(1, slots))]
        self._idle: queue.Queue[_Slot] = queue.Queue()
        for slot in self.slots:
            self._idle.put(slot)
        self._executor = ThreadPoolExecutor(max_workers=len(self.slots), thread_name_prefix=f"sandbox-{backend}")

    def warm_up(self) -> None:
        """Start every agent now, so that a backend that cannot run fails before any job."""
        list(self._executor.map(self._ensure_started, self.slots))

    async def run_async(self, job: Job) -> Result:
        return await asyncio.wrap_future(self._executor.submit(self.run, job))

    def run(self, job: Job) -> Result:
        slot = self._idle.get()
        try:
            return self._run_on(slot, job)
        finally:
            self._idle.put(slot)

    def close(self) -> None:
        for slot in self.slots:
            self._stop(slot)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> AgentPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run_on(self, slot: _Slot, job: Job) -> Result:
        request, nonce = agent_request(job)
        # An agent can die between jobs (its container removed, the OOM killer): the job then
        # runs once more on a fresh agent. Lost twice, it is the job's doing.
        for attempt in range(2):
            self._ensure_started(slot)
            try:
                slot.channel.send(request)
                reply = slot.channel.receive(job.limits.wall_s + REPLY_SLACK_S)
                break
            except AgentLost as exc:
                log.warning("sandbox %s agent %d lost, restarting it: %s", self.backend, slot.index, exc)
                self._stop(slot)
                if attempt == 1:
                    return Result(status="killed", reason=f"the sandbox agent was lost during the job: {exc}",
                                  backend=self.backend)
        slot.jobs += 1
        if "agent_error" in reply:
            self._stop(slot)
            return Result(status="error", reason=f"sandbox could not run the job: {reply['agent_error']}", backend=self.backend)
        if slot.jobs >= self.recycle_after:
            self._stop(slot)
        return classify(reply, job, nonce, self.backend)

    def _ensure_started(self, slot: _Slot) -> None:
        if slot.channel is not None:
            return
        channel = self._start(slot.index)
        try:
            hello = channel.receive(START_TIMEOUT_S)
        except AgentLost as exc:
            channel.close()
            raise SandboxUnavailable(f"the {self.backend} sandbox agent did not start: {exc}") from exc
        if not hello.get("ready"):
            channel.close()
            raise SandboxUnavailable(f"the {self.backend} sandbox agent answered {hello!r} instead of ready")
        if self.syscall_filter and hello.get("syscall_filter") is not True:
            channel.close()
            raise SandboxUnavailable(f"the {self.backend} sandbox agent runs without its syscall filter ({hello!r})")
        slot.channel, slot.jobs = channel, 0

    def _stop(self, slot: _Slot) -> None:
        if slot.channel is not None:
            channel, slot.channel = slot.channel, None
            channel.close()
