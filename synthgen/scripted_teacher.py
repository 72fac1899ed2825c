"""A scripted OpenAI-compatible HTTP server: the one stand-in synthgen's tests and benchmarks use
for a remote teacher. It answers `/v1/chat/completions` from a responder function, counts the
requests it saw per prompt, and can inject faults (HTTP errors with Retry-After, slow answers,
dropped connections, garbage bodies, truncated answers).

Run it alone with `python -m synthgen.scripted_teacher --port P` (echo responder)."""

from __future__ import annotations

import argparse
import collections
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str
    finish_reason: str = "stop"


@dataclass
class Fault:
    """Applied to requests whose last user message contains `match` ('' = every request),
    at most `times` times (None = always)."""

    kind: str  # "status" | "drop" | "garbage" | "slow"
    match: str = ""
    times: int | None = 1
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0


Responder = Callable[[list[dict]], Reply | str]


def echo_responder(messages: list[dict]) -> Reply:
    """Default script: a code block for prompts that mention CODE, else an echo of the prompt."""
    last = messages[-1]["content"]
    if "CODE" in last:
        return Reply("Here you go:\n```python\ndef solution():\n    return 42\n```")
    return Reply(f"Answer to: {last[:200]}")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that vanish mid-request (killed runs in crash tests) are expected here.
        pass


class ScriptedTeacher:
    def __init__(self, responder: Responder = echo_responder, latency_s: float = 0.0, port: int = 0):
        self.responder = responder
        self.latency_s = latency_s
        self.faults: list[Fault] = []
        self.requests: collections.Counter[str] = collections.Counter()
        self.bodies: list[dict] = []
        self.request_times: list[float] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def requests_containing(self, text: str) -> int:
        with self._lock:
            return sum(count for prompt, count in self.requests.items() if text in prompt)

    def __enter__(self) -> ScriptedTeacher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take_fault(self, prompt: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.match in prompt and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict | bytes, headers: dict | None = None) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                try:
                    self._chat()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed run): nothing to answer

            def _chat(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                messages = body.get("messages") if isinstance(body, dict) else None
                if not messages:
                    self._send(400, {"error": {"message": "no messages"}})
                    return
                prompt = "\n".join(str(m.get("content", "")) for m in messages)
                with teacher._lock:
                    teacher.requests[prompt] += 1
                    teacher.bodies.append(body)
                    teacher.request_times.append(time.monotonic())
                fault = teacher._take_fault(prompt)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault is not None and fault.kind == "status":
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    self._send(fault.status, {"error": {"message": f"scripted {fault.status}"}}, headers)
                    return
                if fault is not None and fault.kind == "garbage":
                    self._send(200, b"<html>this is not json")
                    return
                time.sleep(teacher.latency_s + (fault.delay_s if fault is not None else 0.0))
                reply = teacher.responder(messages)
                if isinstance(reply, str):
                    reply = Reply(reply)
                self._send(200, {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "scripted"),
                    "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                                 "message": {"role": "assistant", "content": reply.content}}],
                    "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(reply.content.split()),
                              "total_tokens": len(prompt.split()) + len(reply.content.split())},
                })

        return Handler


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
