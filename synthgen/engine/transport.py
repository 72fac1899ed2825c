"""How one chat request reaches a teacher endpoint, and what came back.

The request is always the one `openai.AsyncOpenAI` builds for `POST /chat/completions`: same URL,
same auth and client headers, same JSON body. Two ways to send it:

- `direct` (default): the client builds the request once, against a capturing transport (no
  network); every request then goes out as those bytes on one aiohttp session. The client's own
  per-request path (option models, header merging, URL parsing, the httpx layer over aiohttp)
  costs ~0.5 ms of CPU per request, twice what the HTTP exchange itself costs: at a thousand
  requests a second that is the difference between keeping a teacher busy and not.
- `openai`: every request through `AsyncOpenAI.post`, for endpoints whose requests must be
  rebuilt per call (e.g. auth tokens that rotate).

Both report an answer the same way (`Reply`), so retries, limits and accounting do not know
which one ran. The HTTP libraries are imported when a transport is made (the driver of a run
sends no request and starts ~0.6 s sooner without them), or by `load_http_libraries` where a
process will send."""

from __future__ import annotations

import asyncio
import importlib
import json
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import aiohttp

CHAT_PATH = "/chat/completions"
# Set per request by the HTTP layer, never replayed from the captured request.
_PER_REQUEST_HEADERS = {"host", "content-length", "connection", "accept-encoding"}


class NoAnswer(Exception):
    """No HTTP answer at all: connection refused or dropped, or the timeout passed."""


@dataclass
class Reply:
    status: int
    payload: object = None  # the parsed JSON body of a 2xx answer; None when it was not JSON
    problem: str = ""  # what went wrong, for a non-2xx status or an unreadable body
    retry_after_s: float | None = None


class Transport(Protocol):
    async def open(self) -> None:
        """Get ready to send (cheap when ready), so that no request's latency includes set-up."""

    async def post(self, body: dict, attempt: int, url: str | None = None, key: str = "") -> Reply:
        """POST the body to the chat endpoint, or to another URL of the same server (same auth).
        `key`: the request's identity (its cache key), for transports that name requests."""

    async def close(self) -> None: ...


def load_http_libraries() -> None:
    """Import what sending needs (~0.6 s of CPU) now, not when the first requests are waiting."""
    for module in ("aiohttp", "httpx2", "openai"):
        importlib.import_module(module)


def open_transport(kind: str, base_url: str, api_key: str, timeout_s: float) -> Transport:
    if kind == "openai":
        return OpenAITransport(base_url, api_key, timeout_s)
    return DirectTransport(base_url, api_key, timeout_s)


class OpenAITransport:
    def __init__(self, base_url: str, api_key: str, timeout_s: float):
        import openai

        self._openai = openai
        # aiohttp under the client (openai's documented option for high concurrency): httpx's own
        # pool scans every connection on each request and costs ~50 % more CPU here.
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s,
            http_client=openai.DefaultAioHttpClient(timeout=timeout_s),
        )

    async def open(self) -> None:
        pass

    async def post(self, body: dict, attempt: int, url: str | None = None, key: str = "") -> Reply:
        try:
            # The generic `post` (documented for custom requests) skips the typed request and
            # response models of `chat.completions.create`: the body is plain JSON already and
            # four fields of the answer are read. An absolute URL is taken as it is.
            payload = await self._client.post(url or CHAT_PATH, body=body, cast_to=object)
        except self._openai.APIStatusError as exc:
            return Reply(exc.status_code, problem=http_problem(exc.status_code, exc.body),
                         retry_after_s=retry_after(exc.response.headers))
        except self._openai.APIConnectionError as exc:  # includes timeouts
            raise NoAnswer(f"{type(exc).__name__}: {exc}"[:300]) from None
        except (self._openai.APIResponseValidationError, ValueError) as exc:
            return Reply(200, problem=f"malformed response: {type(exc).__name__}")
        return Reply(200, payload=payload)

    async def close(self) -> None:
        await self._client.close()


class DirectTransport:
    def __init__(self, base_url: str, api_key: str, timeout_s: float):
        self._base_url = base_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._url = ""
        self._headers: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._no_answer: tuple[type[BaseException], ...] = (asyncio.TimeoutError,)
        self._ready = asyncio.Lock()

    async def _prepare(self) -> None:
        """Let the openai client build one request, and keep its URL and headers."""
        import aiohttp
        import httpx2
        import openai

        captured: list[httpx2.Request] = []

        def capture(request: httpx2.Request) -> httpx2.Response:
            captured.append(request)
            return httpx2.Response(200, json={})

        client = openai.AsyncOpenAI(
            base_url=self._base_url, api_key=self._api_key, max_retries=0, timeout=self._timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(transport=httpx2.MockTransport(capture)),
        )
        async with client:
            await client.post(CHAT_PATH, body={}, cast_to=object)
        request = captured[0]
        self._url = str(request.url)
        self._headers = {k: v for k, v in request.headers.items() if k.lower() not in _PER_REQUEST_HEADERS}
        self._proxy = _environment_proxy(self._url)
        # No cookie jar: an API client has no use for one, and aiohttp's filters every request.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
        )
        self._no_answer = (aiohttp.ClientError, asyncio.TimeoutError)

    async def open(self) -> None:
        if self._session is None:
            async with self._ready:
                if self._session is None:
                    await self._prepare()

    async def post(self, body: dict, attempt: int, url: str | None = None, key: str = "") -> Reply:
        assert self._session is not None, "open() first"
        headers = self._headers if not attempt else {**self._headers, "x-stainless-retry-count": str(attempt)}
        try:
            async with self._session.post(url or self._url, data=json.dumps(body).encode(), headers=headers,
                                          proxy=self._proxy) as response:
                data = await response.read()
                status, response_headers = response.status, response.headers
        except self._no_answer as exc:
            raise NoAnswer(f"{type(exc).__name__}: {exc}"[:300]) from None
        if status >= 300:
            return Reply(status, problem=http_problem(status, _json_or_text(data)), retry_after_s=retry_after(response_headers))
        try:
            return Reply(status, payload=json.loads(data))
        except ValueError as exc:
            return Reply(status, problem=f"malformed response: {type(exc).__name__}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _environment_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY / NO_PROXY name for this URL, as the openai client would use it.
    Resolved once: aiohttp's own `trust_env` reads the environment on every request, which
    doubles the CPU a request costs."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _json_or_text(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def http_problem(status: int, body: object) -> str:
    """`HTTP 429: Rate limit reached` from an OpenAI-style error body, or the body's start."""
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    text = message if isinstance(message, str) else json.dumps(body) if isinstance(body, dict) else str(body or "")
    return f"HTTP {status}: {' '.join(text.split())[:200]}".rstrip(": ")


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = (headers or {}).get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None  # an HTTP date: fall back to our own backoff
    return None
