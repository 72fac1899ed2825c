"""The teacher client: one OpenAI-compatible endpoint behind `openai.AsyncOpenAI`, with a cap on
requests in flight, retries, and a response cache keyed by the exact request."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass

import urllib.error
import urllib.request

import openai

from synthgen.config import Teacher
from synthgen.engine.cache import ResponseCache

NO_KEY = "not-needed"


class TeacherUnavailable(Exception):
    """The endpoint could not be reached or kept failing: the seed is retried on the next run."""


class TeacherRefused(Exception):
    """The endpoint answered, but not usefully for this request: the seed is rejected."""


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


def request_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class TeacherClient:
    def __init__(self, name: str, config: Teacher, cache: ResponseCache | None, api_key: str | None):
        self.name = name
        self.config = config
        self.cache = cache
        self._semaphore = asyncio.Semaphore(config.max_in_flight)
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=api_key or NO_KEY,
            max_retries=config.max_retries,
            timeout=config.timeout_s,
        )

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        sample_index: int = 0,
    ) -> Completion:
        body: dict = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.config.max_tokens,
        }
        if self.config.top_p is not None:
            body["top_p"] = self.config.top_p
        if stop:
            body["stop"] = stop
        if self.config.seed is not None:
            body["seed"] = self.config.seed + sample_index
        key = request_key({**body, "sample_index": sample_index})
        prompt_hash = key[:16]
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            return Completion(**cached, latency_s=0.0, cache_hit=True, retries=0, prompt_hash=prompt_hash)
        async with self._semaphore:
            started = time.monotonic()
            text, finish_reason, tokens_in, tokens_out, model, retries = await self._send(body)
            latency = time.monotonic() - started
        stored = {"text": text, "finish_reason": finish_reason, "tokens_in": tokens_in, "tokens_out": tokens_out, "model": model}
        if self.cache is not None:
            self.cache.put(key, stored)
        return Completion(**stored, latency_s=latency, cache_hit=False, retries=retries, prompt_hash=prompt_hash)

    async def _send(self, body: dict) -> tuple[str, str, int, int, str, int]:
        malformed = ""
        for attempt in range(self.config.max_retries + 1):
            try:
                response = await self._client.chat.completions.create(**body)
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
                raise TeacherUnavailable(f"{self.config.base_url}: {_describe(exc)}") from None
            except openai.APIStatusError as exc:
                raise TeacherRefused(f"HTTP {exc.status_code}: {_describe(exc)}") from None
            except openai.APIResponseValidationError as exc:
                malformed = f"malformed response: {exc}"
                continue
            choices = getattr(response, "choices", None) or []
            message = choices[0].message if choices else None
            if message is None or not isinstance(message.content, str):
                malformed = "response without a message"
                continue
            usage = response.usage
            return (
                message.content,
                choices[0].finish_reason or "",
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                response.model or self.config.model,
                attempt,
            )
        raise TeacherRefused(f"{malformed} (after {self.config.max_retries + 1} attempts)")

    async def close(self) -> None:
        await self._client.close()


def _describe(exc: openai.OpenAIError) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def probe(name: str, config: Teacher, api_key: str | None, timeout_s: float = 10.0) -> None:
    """Fail before any work starts when a teacher cannot be reached; say the URL and what was tried.
    Any HTTP answer counts as reachable (some endpoints have no /models)."""
    from synthgen.errors import UserError

    url = config.base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise UserError(
                f"teacher '{name}' at {config.base_url} refused the API key from ${config.api_key_env} "
                f"(GET {url}: HTTP {exc.code})"
            ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"teacher '{name}' unreachable at {config.base_url}: tried GET {url}: {reason}") from None
