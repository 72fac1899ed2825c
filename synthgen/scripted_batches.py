"""The OpenAI Batch API, scripted, on a ScriptedTeacher: `/v1/files` (multipart upload, content
download) and `/v1/batches` (create, retrieve, list, cancel). A batch's lines are answered by the
teacher's own responder once `latency_s` has passed since it was created, unless `hold` is set
(crash tests kill a run while its batch is in progress). Faults for the tests: the next batch
fails validation, or the next batch expires with only its first lines answered.

Everything a test wants to check is kept: every batch created (its custom ids, endpoint,
metadata) and every line answered."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from synthgen.scripted_teacher import ScriptedTeacher

_TERMINAL = {"completed", "failed", "expired", "cancelled"}


@dataclass
class ScriptedBatch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict
    lines: list[dict]
    created_at: float
    status: str = "in_progress"
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict] = field(default_factory=list)
    answered_lines: int | None = None  # expires after answering this many lines

    @property
    def custom_ids(self) -> list[str]:
        return [line["custom_id"] for line in self.lines]

    def view(self) -> dict:
        done = self.status == "completed"
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "input_file_id": self.input_file_id,
            "completion_window": "24h", "status": self.status, "created_at": int(self.created_at),
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id, "metadata": self.metadata,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "request_counts": {"total": len(self.lines), "completed": len(self.lines) if done else 0, "failed": 0},
        }


class ScriptedBatchAPI:
    def __init__(self, teacher: ScriptedTeacher, latency_s: float = 0.2):
        self.teacher = teacher
        self.latency_s = latency_s
        self.hold = False  # batches stay in progress until this is cleared
        self.fail_next: str | None = None  # the next batch created fails validation with this message
        self.expire_next: int | None = None  # the next batch created expires after answering this many lines
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, ScriptedBatch] = {}
        self.lines_answered = 0
        self._lock = threading.Lock()
        teacher.service = self

    def handles(self, method: str, path: str) -> bool:
        return re.search(r"/v1/(files|batches)(/|$|\?)", path) is not None

    def answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict | bytes]:
        route = path.split("?", 1)[0].rstrip("/")
        with self._lock:
            if method == "POST" and route.endswith("/v1/files"):
                return self._upload(headers.get("content-type", ""), raw)
            if method == "GET" and (found := re.search(r"/v1/files/([^/]+)/content$", route)):
                content = self.files.get(found[1])
                return (200, content) if content is not None else _not_found(found[1])
            if method == "POST" and route.endswith("/v1/batches"):
                return self._create(json.loads(raw))
            if method == "GET" and route.endswith("/v1/batches"):
                return self._list(path)
            if (found := re.search(r"/v1/batches/([^/]+)(/cancel)?$", route)):
                batch = self.batches.get(found[1])
                if batch is None:
                    return _not_found(found[1])
                if found[2] and batch.status not in _TERMINAL:
                    batch.status = "cancelled"
                self._advance(batch)
                return 200, batch.view()
        return 404, {"error": {"message": f"{method} {path}: not served"}}

    @property
    def created(self) -> list[ScriptedBatch]:
        with self._lock:
            return list(self.batches.values())

    def _upload(self, content_type: str, raw: bytes) -> tuple[int, dict]:
        parts = _multipart(content_type, raw)
        if parts.get("purpose") != b"batch" or "file" not in parts:
            return 400, {"error": {"message": "expected a multipart upload with purpose=batch and a file"}}
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = parts["file"]
        return 200, {"id": file_id, "object": "file", "bytes": len(parts["file"]), "purpose": "batch",
                     "created_at": int(time.time()), "filename": "input.jsonl", "status": "processed"}

    def _create(self, request: dict) -> tuple[int, dict]:
        content = self.files.get(request.get("input_file_id", ""))
        if content is None:
            return _not_found(request.get("input_file_id"))
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        batch = ScriptedBatch(id=f"batch_{uuid.uuid4().hex[:12]}", input_file_id=request["input_file_id"],
                              endpoint=request.get("endpoint", ""), metadata=request.get("metadata") or {},
                              lines=lines, created_at=time.time())
        if self.fail_next is not None:
            batch.status, batch.errors, self.fail_next = "failed", [{"code": "invalid_request", "message": self.fail_next}], None
        batch.answered_lines, self.expire_next = self.expire_next, None
        self.batches[batch.id] = batch
        return 200, batch.view()

    def _list(self, path: str) -> tuple[int, dict]:
        """Newest first, in pages, as OpenAI lists them."""
        query = dict(item.split("=", 1) for item in path.partition("?")[2].split("&") if "=" in item)
        ordered = sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)
        if "after" in query:
            ids = [b.id for b in ordered]
            ordered = ordered[ids.index(query["after"]) + 1:] if query["after"] in ids else []
        page = ordered[: int(query.get("limit", 20))]
        return 200, {"object": "list", "data": [b.view() for b in page], "has_more": len(ordered) > len(page),
                     "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None}

    def _advance(self, batch: ScriptedBatch) -> None:
        """Answer a batch whose time has come (retrieving it is what moves it)."""
        if batch.status != "in_progress" or self.hold or time.time() - batch.created_at < self.latency_s:
            return
        answered = batch.lines if batch.answered_lines is None else batch.lines[: batch.answered_lines]
        output, errors = [], []
        for line in answered:
            status, payload = self.teacher.completion(line["body"])
            output.append({"id": f"resp_{uuid.uuid4().hex[:8]}", "custom_id": line["custom_id"], "error": None,
                           "response": {"status_code": status, "request_id": uuid.uuid4().hex[:8], "body": payload}})
        for line in batch.lines[len(answered):]:
            errors.append({"id": f"resp_{uuid.uuid4().hex[:8]}", "custom_id": line["custom_id"], "response": None,
                           "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
        self.lines_answered += len(answered)
        batch.output_file_id = self._store(output)
        batch.error_file_id = self._store(errors) if errors else None
        batch.status = "completed" if not errors else "expired"

    def _store(self, lines: list[dict]) -> str:
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return file_id


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    """The named parts of a multipart/form-data body."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    parts: dict[str, bytes] = {}
    if boundary is None:
        return parts
    for chunk in raw.split(b"--" + boundary[1].encode())[1:-1]:
        head, _, content = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        if name is not None:
            parts[name[1].decode()] = content
    return parts


def _not_found(name: object) -> tuple[int, dict]:
    return 404, {"error": {"message": f"No such object: {name}"}}
