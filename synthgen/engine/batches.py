"""Requests through a provider's Batch API (OpenAI's `/v1/files` + `/v1/batches`: half price,
answers within the completion window), behind the same `post` as an HTTP request.

Requests gather while a workflow's seeds reach the same step: a batch is sent once no request
joined it for `collect_s` (or it is full), so a multi-step workflow advances step by step, one
batch per step and worker. Each line is named by the request's cache key.

Exactly once across restarts: before a batch is uploaded, its keys and a token are written to the
run directory (`cache/batches/`), and the token goes into the batch's metadata; once created, its
id is written too. A resumed run asks for the same keys, finds them in a recorded batch and waits
for that batch instead of sending them again; a batch whose id was never written (killed between
create and write) is found by its token in the provider's batch list. Only a request whose batch
ended without an answer for it (expired, cancelled, never created) is sent again."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from synthgen.config.workflow import BatchOptions
from synthgen.engine.transport import CHAT_PATH, NoAnswer, Reply, http_problem

if TYPE_CHECKING:
    import openai

    from synthgen.engine.cache import ResponseCache

log = logging.getLogger(__name__)
T = TypeVar("T")

_FINISHED = {"completed", "failed", "expired", "cancelled"}
_LIST_PAGES = 20  # a token is looked for among the newest 20 x 100 batches
_POLL_ATTEMPTS = 5  # a batch that cannot be looked at this many times in a row: the requests wait for a rerun


@dataclass(eq=False)  # one batch is one object: kept in sets by identity
class _Batch:
    token: str
    path: str  # the endpoint its lines go to, e.g. /v1/chat/completions
    lines: dict[str, dict] = field(default_factory=dict)  # key -> body, while gathering
    keys: list[str] = field(default_factory=list)  # once sent (or recorded by an earlier run)
    batch_id: str | None = None
    last_joined: float = 0.0  # when a request last joined it (monotonic)
    replies: dict[str, Reply] | None = None  # once finished
    task: asyncio.Task | None = None

    def entry(self, base_url: str) -> dict:
        return {"token": self.token, "base_url": base_url, "path": self.path, "batch_id": self.batch_id,
                "keys": self.keys}


JOURNAL = "batches"


class BatchJournal:
    """The batches a run submitted, recorded beside the response cache (a resumed run waits for
    them): one JSON file per batch, replaced whole."""

    def __init__(self, cache: ResponseCache | None):
        self._cache = cache

    def write(self, entry: dict) -> None:
        if self._cache is not None:
            entry = {"written_at": time.time()} | entry
            self._cache.write_file(f"{JOURNAL}/{entry['token']}.json", json.dumps(entry))

    def entries(self) -> list[dict]:
        """Oldest first, so that a request sent again maps to its latest batch."""
        if self._cache is None:
            return []
        found = []
        for name, data in self._cache.read_files(JOURNAL, ".json"):
            try:
                found.append(json.loads(data))
            except ValueError:
                log.warning("unreadable batch record %s skipped", name)
        return sorted(found, key=lambda entry: entry.get("written_at", 0.0))


class BatchTransport:
    def __init__(self, base_url: str, api_key: str, timeout_s: float, options: BatchOptions,
                 cache: ResponseCache | None):
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_s = timeout_s
        self.options = options
        self.journal = BatchJournal(cache)
        self._client: openai.AsyncOpenAI | None = None
        self._batch_of: dict[str, _Batch] = {}  # key -> the batch that answers it (gathering, sent or recorded)
        self._gathering: dict[str, _Batch] = {}  # endpoint path -> the batch requests join

    async def open(self) -> None:
        if self._client is not None:
            return
        import openai

        self._openai = openai
        self._client = openai.AsyncOpenAI(base_url=self._base_url, api_key=self._api_key, timeout=self._timeout_s,
                                          max_retries=2)
        for entry in self.journal.entries():
            if entry.get("base_url") != self._base_url:
                continue
            recorded = _Batch(token=entry["token"], path=entry["path"], keys=entry["keys"], batch_id=entry.get("batch_id"))
            for key in entry["keys"]:
                self._batch_of[key] = recorded

    async def post(self, body: dict, attempt: int, url: str | None = None, key: str = "") -> Reply:
        key = key or uuid.uuid4().hex
        batch = self._batch_of.get(key)
        if batch is None:
            batch = self._join(key, body, self._endpoint(url))
        if batch.task is None or (batch.task.done() and batch.replies is None):
            batch.task = asyncio.ensure_future(self._see_through(batch))
        await asyncio.shield(batch.task)  # raises NoAnswer when the batch could not be looked at
        assert batch.replies is not None
        if self._batch_of.get(key) is batch:
            del self._batch_of[key]  # answered: asking again (a retry) means a new batch
        return batch.replies.get(key) or Reply(408, problem=f"batch {batch.batch_id} ended without an answer to this request")

    def _endpoint(self, url: str | None) -> str:
        return urllib.parse.urlsplit(url or self._base_url + CHAT_PATH).path

    def _join(self, key: str, body: dict, path: str) -> _Batch:
        batch = self._gathering.get(path)
        if batch is None or len(batch.lines) >= self.options.max_requests:
            batch = self._gathering[path] = _Batch(token=f"sg-{uuid.uuid4().hex}", path=path)
        batch.lines[key] = body
        self._batch_of[key] = batch
        batch.last_joined = time.monotonic()
        return batch

    async def _see_through(self, batch: _Batch) -> None:
        """Send the batch (once its requests stop coming), wait for it and read its answers."""
        assert self._client is not None
        if batch.lines:
            while (quiet := time.monotonic() - batch.last_joined) < self.options.collect_s \
                    and len(batch.lines) < self.options.max_requests:
                await asyncio.sleep(self.options.collect_s - quiet)
            if self._gathering.get(batch.path) is batch:
                del self._gathering[batch.path]
            await self._send(batch)
            if batch.replies is not None:
                return
        elif batch.batch_id is None:
            batch.batch_id = await self._find(batch.token)
            if batch.batch_id is None:  # killed before the batch was created: nothing to wait for
                batch.replies = {}
                return
        view = await self._wait(batch)
        batch.replies = await self._read(view, batch.keys)

    async def _send(self, batch: _Batch) -> None:
        assert self._client is not None
        lines = "".join(json.dumps({"custom_id": key, "method": "POST", "url": batch.path, "body": body}) + "\n"
                        for key, body in batch.lines.items())
        batch.keys, batch.lines = list(batch.lines), {}
        self.journal.write(batch.entry(self._base_url))  # before the upload: a kill from here on is recoverable
        try:
            upload = await self._client.files.create(file=(f"{batch.token}.jsonl", lines.encode()), purpose="batch")
            created = await self._client.batches.create(
                input_file_id=upload.id, endpoint=batch.path, completion_window="24h",  # type: ignore[arg-type]
                metadata={"synthgen_token": batch.token})
        except self._openai.APIStatusError as exc:
            refused = Reply(exc.status_code, problem=f"batch not accepted: {http_problem(exc.status_code, exc.body)}")
            batch.replies = dict.fromkeys(batch.keys, refused)
            return
        except self._openai.APIConnectionError as exc:
            # Maybe created, maybe not: the token in the record settles it on the next attempt.
            raise NoAnswer(f"batch upload: {type(exc).__name__}: {exc}"[:300]) from None
        batch.batch_id = created.id
        self.journal.write(batch.entry(self._base_url))
        log.info("batch %s sent: %d requests to %s", created.id, len(batch.keys), batch.path)

    async def _find(self, token: str) -> str | None:
        assert self._client is not None
        client = self._client
        page = await self._call(lambda: client.batches.list(limit=100))
        for _ in range(_LIST_PAGES):
            for found in page.data:
                if (found.metadata or {}).get("synthgen_token") == token:
                    return found.id
            if not page.has_next_page():
                return None
            page = await self._call(page.get_next_page)
        return None

    async def _wait(self, batch: _Batch):
        assert self._client is not None and batch.batch_id is not None
        while True:
            batch_id, client = batch.batch_id, self._client
            view = await self._call(lambda: client.batches.retrieve(batch_id))
            if view.status in _FINISHED:
                return view
            await asyncio.sleep(self.options.poll_s * random.uniform(0.9, 1.1))

    async def _read(self, view, keys: list[str]) -> dict[str, Reply]:
        """Each request's answer, as an HTTP exchange would have given it."""
        client = self._client
        assert client is not None
        if view.status == "failed":
            errors = "; ".join(f"{e.code}: {e.message}" for e in (view.errors.data if view.errors else []) or [])
            status = 429 if "limit" in errors else 400
            log.warning("batch %s failed: %s", view.id, errors)
            return dict.fromkeys(keys, Reply(status, problem=f"batch {view.id} failed: {errors}"[:300]))
        replies: dict[str, Reply] = {}
        for file_id in (view.output_file_id, view.error_file_id):
            if not file_id:
                continue
            content = await self._call(lambda: client.files.content(file_id))
            for line in content.content.decode("utf-8", "replace").splitlines():
                try:
                    result = json.loads(line)
                    replies[result["custom_id"]] = _reply(result)
                except (ValueError, KeyError, TypeError):
                    log.warning("unreadable line in batch %s output skipped", view.id)
        return replies

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """A call about a batch (not a generation): retried, then NoAnswer; the batch is kept."""
        for attempt in range(_POLL_ATTEMPTS):
            try:
                return await request()
            except (self._openai.APIConnectionError, self._openai.APIStatusError) as exc:
                if attempt == _POLL_ATTEMPTS - 1:
                    raise NoAnswer(f"batch API: {type(exc).__name__}: {exc}"[:300]) from None
                await asyncio.sleep(min(self.options.poll_s, 2.0**attempt))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for batch in set(self._batch_of.values()) | set(self._gathering.values()):
            if batch.task is not None:
                batch.task.cancel()
        if self._client is not None:
            await self._client.close()


def _reply(result: dict) -> Reply:
    response = result.get("response") or {}
    if result.get("error") or not response:
        error = result.get("error") or {}
        expired = error.get("code") in ("batch_expired", "batch_cancelled")
        return Reply(408 if expired else 500, problem=f"batch: {error.get('code')}: {error.get('message')}"[:300])
    status = response.get("status_code", 500)
    if status >= 300:
        return Reply(status, problem=http_problem(status, response.get("body")))
    return Reply(status, payload=response.get("body"))
