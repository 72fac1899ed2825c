"""The teacher client: one OpenAI-compatible endpoint (requests built by `openai.AsyncOpenAI`, sent
as `transport.py` says), with a cap on requests in flight, an optional shared rate limiter, our
own retry loop (so that every retry is counted and every 429 reaches the limiter), and a response
cache keyed by the exact request.

Failure classes decide a seed's fate: an endpoint that cannot be reached or keeps failing
(connection errors, timeouts, 429, 5xx) leaves the seed unsettled for the next run; an answer
that is refused (other 4xx) or stays malformed rejects the seed with the reason."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from synthgen.config.workflow import Teacher
from synthgen.engine.cache import ResponseCache
from synthgen.engine.gate import AdaptiveGate
from synthgen.engine.records import Turn
from synthgen.engine.batches import BatchTransport
from synthgen.engine.transport import NoAnswer, Reply, Transport, open_transport
from synthgen.config.errors import UserError

NO_KEY = "not-needed"
_RETRYABLE_STATUS = {408, 409, 425, 429}
# A request that used up its retries while the endpoint answered others goes back to the queue
# this many times: random faults (30 % of calls, say) almost never fail one request through all
# of them, a request the endpoint will never serve (or an endpoint that is down) still ends.
REQUEUE_ROUNDS = 3
# Candidate k of a sample is sampled with seed + sample_index + k * this: distinct for any n <= 16.
VARIANT_SEED_STRIDE = 1_000_003
_CHARS_PER_TOKEN = 4  # rough and deliberately generous: only used to reserve a tokens/minute budget


class TeacherUnavailable(Exception):
    """The endpoint could not be reached or kept failing: the seed is retried on the next run."""


class TeacherRefused(Exception):
    """The endpoint answered, but not usefully for this request: the seed is rejected."""


class RateLimiter(Protocol):
    """Admission control shared by every client of one teacher (the runtime provides a
    cluster-wide one; the engine knows only this interface)."""

    async def acquire(self, tokens: int) -> None: ...

    def completed(self, tokens: int, latency_s: float) -> None: ...

    def rate_limited(self, retry_after_s: float | None) -> None: ...


@dataclass
class Completion:
    text: str
    finish_reason: str
    tokens_in: int
    tokens_out: int
    model: str
    latency_s: float
    cache_hit: bool
    retries: int
    prompt_hash: str

    def turn(self, step: str, purpose: str, teacher: str, round_number: int = 0) -> Turn:
        """This call's lineage in a record."""
        return Turn(step=step, purpose=purpose, round=round_number, teacher=teacher, model=self.model,
                    prompt_hash=self.prompt_hash, tokens_in=self.tokens_in, tokens_out=self.tokens_out,
                    latency_s=round(self.latency_s, 4), cache_hit=self.cache_hit, finish_reason=self.finish_reason,
                    retries=self.retries)


def _model_name(answered: object, asked: str) -> str:
    """The model that answered, as a name: llama.cpp servers answer with the model file's path."""
    if not isinstance(answered, str) or not answered:
        return asked
    if "/" in answered and answered.lower().endswith((".gguf", ".bin", ".safetensors")):
        return answered.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return answered


def request_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def estimate_tokens(body: dict) -> int:
    """A chat body's messages or a completions body's prompt, in rough tokens, plus its max_tokens."""
    prompt = sum(len(m["content"]) for m in body["messages"]) if "messages" in body else len(str(body.get("prompt", "")))
    return prompt // _CHARS_PER_TOKEN + body["max_tokens"]


class TeacherClient:
    def __init__(
        self,
        name: str,
        config: Teacher,
        cache: ResponseCache | None,
        api_key: str | None,
        limiter: RateLimiter | None = None,
        alive: Callable[[], bool] | None = None,
    ):
        self.name = name
        # Asked before every request: False once whatever the answers are for is gone (the
        # run's driver), so nothing more is paid for.
        self.alive = alive
        self.config = config
        self.cache = cache
        self.limiter = limiter
        self.gate = AdaptiveGate(config.max_in_flight)
        self._answered_at = float("-inf")  # when the endpoint last gave any request an answer
        self.paid_requests = self.paid_tokens_out = 0  # answers not from the cache: live progress
        # Services of the server (tokenize, templates) are asked directly, also in batch mode.
        self._direct = open_transport(config.transport, config.base_url, api_key or NO_KEY, config.timeout_s)
        self._transport: Transport = self._direct
        if config.mode == "batch":
            self._transport = BatchTransport(config.base_url, api_key or NO_KEY, config.timeout_s, config.batch, cache)

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        response_format: dict | None = None,
        sample_index: int = 0,
        variant: int = 0,
    ) -> Completion:
        """One answer. `variant` tells apart candidates asked with the same prompt: each gets its
        own sampling seed and cache key, so a second candidate is never the first one's cached
        answer."""
        body = {**self.sampling(temperature, max_tokens, stop, sample_index, variant), "messages": messages}
        if response_format:
            body["response_format"] = response_format
        return await self.send(body, sample_index=sample_index, variant=variant)

    def sampling(self, temperature: float | None, max_tokens: int | None, stop: list[str] | None,
                 sample_index: int, variant: int) -> dict:
        """The model and sampling fields of a request body."""
        body: dict = {
            "model": self.config.model,
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.config.max_tokens,
        }
        if self.config.top_p is not None:
            body["top_p"] = self.config.top_p
        if self.config.frequency_penalty is not None:
            body["frequency_penalty"] = self.config.frequency_penalty
        if self.config.seed is not None:
            body["seed"] = self.config.seed + sample_index + VARIANT_SEED_STRIDE * variant
        if stop:
            body["stop"] = stop
        return body

    async def send(self, body: dict, *, url: str | None = None, sample_index: int = 0, variant: int = 0,
                   allow_empty: bool = False) -> Completion:
        """A generation request (chat, or `url`: another generation endpoint of the server, e.g.
        /completions), answered from the cache when this exact request was paid for before.
        `allow_empty`: an empty answer is an answer (a continuation may end at once)."""
        keyed = {**body, "sample_index": sample_index, **({"variant": variant} if variant else {}),
                 **({"url": url} if url else {})}
        key = request_key(keyed)
        prompt_hash = key[:16]
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            return Completion(**cached, latency_s=0.0, cache_hit=True, retries=0, prompt_hash=prompt_hash)
        stored, retries, latency = await self._send_requeued(body, url, allow_empty, key)
        self.paid_requests += 1
        self.paid_tokens_out += stored["tokens_out"]
        if self.cache is not None:
            self.cache.put(key, stored)
        return Completion(**stored, latency_s=latency, cache_hit=False, retries=retries, prompt_hash=prompt_hash)

    async def call(self, url: str | None, body: dict) -> Reply:
        """One uncached, unretried request to a service of the server (tokenize, templates; None:
        the chat endpoint): the caller reads the status."""
        await self._direct.open()
        try:
            return await self._direct.post(body, 0, url)
        except NoAnswer as exc:
            raise TeacherUnavailable(f"{url}: {exc}") from None

    @property
    def server_root(self) -> str:
        """The server's root URL: llama.cpp and vLLM serve /tokenize and friends beside /v1."""
        base = self.config.base_url.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    async def _send_requeued(self, body: dict, url: str | None, allow_empty: bool, key: str) -> tuple[dict, int, float]:
        """Send; a request that used up its retries while the endpoint answered other requests
        waits (out of the in-flight gate) and goes again, up to REQUEUE_ROUNDS times."""
        retries = rounds = 0
        while True:
            began = time.monotonic()
            try:
                async with self.gate:
                    started = time.monotonic()
                    stored, attempts = await self._send(body, url, allow_empty, key)
                    return stored, retries + attempts, time.monotonic() - started
            except TeacherUnavailable:
                rounds += 1
                retries += self.config.max_retries + 1
                answering = self._answered_at >= began - self.config.down_after_s
                if rounds == REQUEUE_ROUNDS or not answering:
                    raise
            await asyncio.sleep(self._backoff(self.config.max_retries + rounds))

    async def _send(self, body: dict, url: str | None, allow_empty: bool, key: str) -> tuple[dict, int]:
        """Send until an answer comes back; returns it and how many retries it took."""
        problem = ""
        unavailable = False
        attempts = self.config.max_retries + 1
        delay = 0.0
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(delay)
            if self.alive is not None and not self.alive():
                raise TeacherUnavailable(f"{self.config.base_url}: request not sent, the run's driver is gone")
            delay = self._backoff(attempt)
            # Opened first (its first time imports the HTTP libraries, ~0.5 s): a permit taken
            # before it would be spent late, in a burst with every other request that waited.
            await self._transport.open()
            if self.limiter is not None:
                await self.limiter.acquire(estimate_tokens(body))
            started = time.monotonic()
            try:
                reply = await self._transport.post(body, attempt, url, key)
            except NoAnswer as exc:
                unavailable, problem = True, str(exc)
                continue
            if reply.status >= 300:
                if reply.status < 500 and reply.status not in _RETRYABLE_STATUS:
                    raise TeacherRefused(reply.problem)
                unavailable, problem = True, reply.problem
                if reply.status == 429:
                    if self.limiter is not None:
                        self.limiter.rate_limited(reply.retry_after_s)
                    if reply.retry_after_s is not None:
                        delay = min(reply.retry_after_s, self.config.max_backoff_s) + random.uniform(0, 0.1)
                continue
            if reply.problem:  # a 2xx whose body is not JSON
                unavailable, problem = False, reply.problem
                continue
            response = reply.payload
            choice, content = first_choice(response)
            if content is None or not (content.strip() or allow_empty):
                unavailable, problem = False, "empty answer" if content is not None else "response without a message"
                continue
            usage = response.get("usage") or {}
            tokens_in = usage.get("prompt_tokens") or 0
            tokens_out = usage.get("completion_tokens") or 0
            latency = time.monotonic() - started
            self._answered_at = time.monotonic()
            if self.config.mode == "online":  # a batch's wait says nothing about the endpoint's load
                # Per generated token: answers differ in length, queueing shows as slower tokens.
                self.gate.observe(latency / max(1, tokens_out))
            if self.limiter is not None:
                self.limiter.completed(tokens_in + tokens_out, latency)
            stored = {
                "text": content,
                "finish_reason": choice.get("finish_reason") or "",
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "model": _model_name(response.get("model"), self.config.model),
            }
            return stored, attempt
        if unavailable:
            raise TeacherUnavailable(f"{self.config.base_url}: {problem} (after {attempts} attempts)")
        raise TeacherRefused(f"{problem} (after {attempts} attempts)")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: many workers hitting one endpoint must not retry in step."""
        ceiling = min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)

    async def close(self) -> None:
        await self._transport.close()
        if self._direct is not self._transport:
            await self._direct.close()


def first_choice(response: object) -> tuple[dict, str | None]:
    """The first choice and its text (a chat message's, or a /completions choice's), or ({}, None)
    for anything that is not a completion."""
    choices = response.get("choices") if isinstance(response, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else choice.get("text")
    return choice, content if isinstance(content, str) else None


def probe(name: str, config: Teacher, api_key: str | None, timeout_s: float = 10.0) -> None:
    """Fail before any work starts when a teacher cannot be reached (or, in batch mode, serves no
    Batch API); say the URL and what was tried. For chat, any HTTP answer counts as reachable
    (some endpoints have no /models)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    _get_status(name, config, config.base_url.rstrip("/") + "/models", headers, timeout_s)
    if config.mode == "batch":
        url = config.base_url.rstrip("/") + "/batches?limit=1"
        status = _get_status(name, config, url, headers, timeout_s)
        if status != 200:
            raise UserError(f"teacher '{name}' at {config.base_url} serves no Batch API (tried GET {url}: HTTP {status}); "
                            "use mode: online for it")


def _get_status(name: str, config: Teacher, url: str, headers: dict[str, str], timeout_s: float) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise UserError(
                f"teacher '{name}' at {config.base_url} refused the API key from ${config.api_key_env} "
                f"(GET {url}: HTTP {exc.code})"
            ) from None
        return exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"teacher '{name}' unreachable at {config.base_url}: tried GET {url}: {reason}") from None
