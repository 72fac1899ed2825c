"""A scripted OpenAI-compatible HTTP server: the one stand-in synthgen's tests and benchmarks use
for a remote teacher. It answers `/v1/chat/completions` from a responder function, counts the
requests it saw per prompt, and can inject faults (HTTP errors with Retry-After, slow answers,
dropped connections, garbage bodies, truncated answers).

Run it alone with `python -m synthgen.scripted_teacher --port P` (echo responder)."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import inspect
import collections
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Reply:
    content: str
    finish_reason: str = "stop"
    status: int = 200  # another status answers with `content` as the error message


@dataclass
class Fault:
    """Applied to requests whose last user message contains `match` ('' = every request),
    at most `times` times (None = always), each time with probability `rate`."""

    kind: str  # "status" | "drop" | "garbage" | "slow"
    match: str = ""
    times: int | None = 1
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0
    rate: float = 1.0


class Service(Protocol):
    def handles(self, method: str, path: str) -> bool: ...

    def answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict | bytes]: ...


Responder = Callable[..., Reply | str]  # (messages) or (messages, body)
# Another POST path of the server (/v1/completions, /tokenize, ...): body -> (status, JSON payload).
Route = Callable[[dict], tuple[int, dict]]


def is_generation(path: str) -> bool:
    """A request for an answer (chat or text completions), not for a service (tokenize, ...)."""
    return path.rstrip("/").endswith("completions")


def echo_responder(messages: list[dict]) -> Reply:
    """Default script: a code block for prompts that mention CODE, else an echo of the prompt."""
    last = messages[-1]["content"]
    if "CODE" in last:
        return Reply("Here you go:\n```python\ndef solution():\n    return 42\n```")
    return Reply(f"Answer to: {last[:200]}")


class ScriptedTeacher:
    """Serves on 127.0.0.1 from an asyncio loop in a background thread (keep-alive HTTP/1.1),
    light enough to answer thousands of requests per second for the throughput benchmark."""

    def __init__(self, responder: Responder = echo_responder, latency_s: float = 0.0, port: int = 0,
                 routes: dict[str, Route] | None = None):
        self.responder = responder
        self.routes = routes or {}
        # A responder taking (messages, body) also sees the sampling parameters (seed, temperature).
        self._wants_body = len(inspect.signature(responder).parameters) >= 2
        self.latency_s = latency_s
        self.port = port
        self.faults: list[Fault] = []
        self.service: Service | None = None  # another API served beside chat (the Batch API's)
        self._random = random.Random()
        self.requests: collections.Counter[str] = collections.Counter()
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.request_times: list[float] = []
        self.response_times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # Crash tests: answer this many generation requests, then hold every later one unanswered
        # until `release()`, so that a kill lands when exactly these answers exist.
        self.hold_after: int | None = None
        self.answered: list[str] = []  # the generation requests answered, as canonical JSON
        self._released: asyncio.Event | None = None
        self.last_response_at = 0.0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def requests_containing(self, text: str) -> int:
        with self._lock:
            return sum(count for prompt, count in self.requests.items() if text in prompt)

    def release(self) -> None:
        """Stop holding requests (see `hold_after`)."""
        self.hold_after = None
        if self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    async def _generation(self, body: dict, answer) -> bool:
        """Answer a generation request, unless it is held; record it as answered."""
        with self._lock:
            held = self.hold_after is not None and len(self.answered) >= self.hold_after
            if held and self._released is None:
                self._released = asyncio.Event()
        if held:
            await self._released.wait()
        sent = await answer()
        if sent:
            with self._lock:
                self.answered.append(json.dumps(body, sort_keys=True))
        return sent

    def __enter__(self) -> ScriptedTeacher:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", self.port, backlog=4096), self._loop
        )
        self._server = started.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _take_fault(self, prompt: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.match in prompt and (fault.times is None or fault.times > 0) and self._random.random() < fault.rate:
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                if not await self._answer(method, path, headers, body, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass  # clients that vanish mid-request (killed runs in crash tests) are expected here
        finally:
            writer.close()
            self._connections.discard(task)

    async def _answer(self, method: str, path: str, headers: dict, raw: bytes, writer) -> bool:
        """Write one response; False when the connection must be dropped."""
        if self.service is not None and self.service.handles(method, path):
            return await _respond(writer, *self.service.answer(method, path, headers, raw))
        if method == "GET":
            if path.rstrip("/").endswith("/stats"):
                return await _respond(writer, 200, self.stats())
            if path.rstrip("/").endswith("/models"):
                return await _respond(writer, 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            return await _respond(writer, 404, {"error": {"message": "not found"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return await _respond(writer, 400, {"error": {"message": "body is not JSON"}})
        route = next((handler for suffix, handler in self.routes.items() if path.rstrip("/").endswith(suffix)), None)
        if route is not None:
            with self._lock:
                self.bodies.append(body)
                self.paths.append(path)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if is_generation(path):
                return await self._generation(body, lambda: _respond(writer, *route(body)))
            return await _respond(writer, *route(body))
        messages = body.get("messages") if isinstance(body, dict) else None
        if not messages:
            return await _respond(writer, 400, {"error": {"message": "no messages"}})
        prompt = "\n".join(str(m.get("content", "")) for m in messages)
        with self._lock:
            self.requests[prompt] += 1
            self.bodies.append(body)
            self.headers.append(headers)
            self.paths.append(path)
            self.request_times.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault = self._take_fault(prompt)
            if fault is not None and fault.kind == "drop":
                return False
            if fault is not None and fault.kind == "status":
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return await _respond(writer, fault.status, {"error": {"message": f"scripted {fault.status}"}}, extra)
            if fault is not None and fault.kind == "garbage":
                return await _respond(writer, 200, b"<html>this is not json")
            delay = self.latency_s + (fault.delay_s if fault is not None else 0.0)
            if delay:
                await asyncio.sleep(delay)
            status, payload = self.completion(body)
            if status != 200:
                return await _respond(writer, status, payload)
            return await self._generation(body, lambda: _respond(writer, 200, payload))
        finally:
            with self._lock:
                self.in_flight -= 1
                self.last_response_at = time.monotonic()
                self.response_times.append(self.last_response_at)

    def completion(self, body: dict) -> tuple[int, dict]:
        """The responder's answer to a chat request body, as an HTTP status and JSON payload."""
        messages = body["messages"]
        reply = self.responder(messages, body) if self._wants_body else self.responder(messages)
        if isinstance(reply, str):
            reply = Reply(reply)
        if reply.status != 200:
            return reply.status, {"error": {"message": reply.content}}
        prompt = "\n".join(str(m.get("content", "")) for m in messages)
        prompt_tokens, completion_tokens = len(prompt.split()), len(reply.content.split())
        return 200, {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                         "message": {"role": "assistant", "content": reply.content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def stats(self) -> dict:
        """Counts and the request window (first request in to last response out), for benchmarks.
        `first_at` is on the system's monotonic clock, which other processes read as well."""
        with self._lock:
            first = min(self.request_times, default=0.0)
            window = max(0.0, self.last_response_at - first)
            # Requests in flight at each tenth of the window: where a client leaves the server idle.
            # Both lists are appended in time order under the lock, so they are sorted.
            moments = [first + window * (i + 0.5) / 10 for i in range(10)] if window else []
            profile = [bisect.bisect_right(self.request_times, m) - bisect.bisect_right(self.response_times, m)
                       for m in moments]
            return {"requests": sum(self.requests.values()), "window_s": window, "first_at": first,
                    "max_in_flight": self.max_in_flight, "in_flight": self.in_flight, "in_flight_profile": profile}


async def _respond(writer: asyncio.StreamWriter, status: int, payload: dict | bytes, headers: dict | None = None) -> bool:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    return True


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


def main() -> None:
    parser = argparse.ArgumentParser(description="scripted OpenAI-compatible teacher (echo responder)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    with ScriptedTeacher(latency_s=args.latency, port=args.port) as teacher:
        print(teacher.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
