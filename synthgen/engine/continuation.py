"""What pivotal token search needs of a teacher beyond chat: continue an answer from a prefix,
and cut an answer at the teacher's token boundaries.

Continuation styles (`teacher.continuation`):
- `chat_prefill`: a chat request whose last message is the assistant's prefix, with vLLM's
  `continue_final_message` (llama.cpp continues a final assistant message by itself and answers
  with the prefix repeated; the probe notices and the prefix is taken off).
- `completions`: `/v1/completions` with the chat template applied to the query and the prefix
  appended; the template comes from the server (llama.cpp's `/apply-template`) or is ChatML.
- `auto`: the first of these the endpoint answers in a probe.

Tokenisation (`teacher.tokenizer`): the server's `/tokenize` (pieces from llama.cpp's
`with_pieces`, or ids turned into pieces through `/detokenize` as vLLM serves them), or a local
tokenizer. Pieces always join back to the text exactly, so every cut is a token boundary."""

from __future__ import annotations

import asyncio
import logging

from synthgen.engine.teacher import Completion, TeacherClient, TeacherRefused
from synthgen.engine.tokens import splitter
from synthgen.engine.transport import Reply

log = logging.getLogger(__name__)

PROBE_QUERY = [{"role": "user", "content": "Count from one to twenty in words, separated by commas."}]
PROBE_PREFIX = "one, two, three, four, five,"
_MARK = "\u2063PREFIX\u2063"  # stands for the assistant's text while the server applies the template
_DETOKENIZE_IN_FLIGHT = 16


class CannotContinue(Exception):
    """The endpoint offers no way to continue a prefix (the message says what was tried)."""


def chatml(messages: list[dict[str, str]]) -> str:
    """The ChatML prompt of a conversation whose assistant turn is open (its text follows)."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


class Continuer:
    """One teacher's continuation style and tokenizer, found out once and then used for every
    sample of every search in this process."""

    def __init__(self, teacher: TeacherClient):
        self.teacher = teacher
        self.config = teacher.config
        self.style = ""
        self.echoes_prefix = False
        self.tokenizer = ""
        self._split = None
        self._ready = asyncio.Lock()
        self._failure: CannotContinue | None = None
        self._heads: dict[str, str] = {}

    @property
    def completions_url(self) -> str:
        return self.config.base_url.rstrip("/") + "/completions"

    async def ready(self) -> None:
        if self.style:  # every sample asks: once found out, no lock to queue on
            return
        async with self._ready:
            if self._failure is not None:  # found out once: every search of this teacher fails alike
                raise self._failure
            if not self.style:
                try:
                    self.style = await self._find_style()
                    self.tokenizer = await self._find_tokenizer()
                except CannotContinue as exc:
                    self.style, self._failure = "", exc
                    raise
                log.info("teacher %s: continues prefixes by %s%s, cuts at %s tokens", self.teacher.name, self.style,
                         " (answers repeat the prefix)" if self.echoes_prefix else "", self.tokenizer)

    async def _find_style(self) -> str:
        wanted = self.config.continuation
        styles = ["chat_prefill", "completions"] if wanted == "auto" else [wanted]
        tried = []
        for style in styles:
            problem = await (self._probe_prefill() if style == "chat_prefill" else self._probe_completions())
            if not problem:
                return style
            tried.append(f"{style}: {problem}")
        raise CannotContinue(f"teacher '{self.teacher.name}' at {self.config.base_url} cannot continue a prefix; "
                             f"tried {'; '.join(tried)}")

    # The probes are generation requests like any other: cached, so a rerun pays for none.
    async def _probe_prefill(self) -> str:
        body = self._prefill_body(PROBE_QUERY, PROBE_PREFIX, self.teacher.sampling(0.0, 8, None, 0, 0))
        try:
            completion = await self.teacher.send(body, allow_empty=True)
        except TeacherRefused as exc:
            return str(exc)
        self.echoes_prefix = completion.text.startswith(PROBE_PREFIX)
        return ""

    async def _probe_completions(self) -> str:
        try:
            head = await self._head(PROBE_QUERY)
        except CannotContinue as exc:
            return str(exc)
        body = {**self.teacher.sampling(0.0, 4, None, 0, 0), "prompt": head + PROBE_PREFIX}
        try:
            await self.teacher.send(body, url=self.completions_url, allow_empty=True)
        except TeacherRefused as exc:
            return f"POST {self.completions_url}: {exc}"
        return ""

    async def _head(self, query: list[dict[str, str]]) -> str:
        """The templated prompt up to where the assistant's text begins."""
        key = repr(query)
        if key not in self._heads:
            if self.config.chat_template == "chatml":
                self._heads[key] = chatml(query)
            else:
                url = self.teacher.server_root + "/apply-template"
                reply = await self.teacher.call(url, {"messages": [*query, {"role": "assistant", "content": _MARK}]})
                prompt = reply.payload.get("prompt") if isinstance(reply.payload, dict) else None
                if not isinstance(prompt, str) or not prompt.endswith(_MARK):
                    raise CannotContinue(f"POST {url} gave no template ({reply.problem or 'unexpected answer'}); "
                                         "set chat_template: chatml if the model uses ChatML")
                self._heads[key] = prompt[: -len(_MARK)]
        return self._heads[key]

    @staticmethod
    def _prefill_body(query: list[dict[str, str]], prefix: str, sampling: dict) -> dict:
        return {**sampling, "messages": [*query, {"role": "assistant", "content": prefix}],
                "continue_final_message": True, "add_generation_prompt": False}

    async def continue_answer(self, query: list[dict[str, str]], prefix: str, *, temperature: float | None,
                              max_tokens: int | None, sample_index: int, variant: int) -> Completion:
        """One sampled continuation of `prefix` (its text only), cached like every request."""
        await self.ready()
        sampling = self.teacher.sampling(temperature, max_tokens, None, sample_index, variant)
        if self.style == "chat_prefill":
            # No prefix yet: a plain answer (llama.cpp renders an empty final assistant message wrongly).
            body = self._prefill_body(query, prefix, sampling) if prefix else {**sampling, "messages": query}
            completion = await self.teacher.send(body, sample_index=sample_index, variant=variant, allow_empty=True)
            if self.echoes_prefix and completion.text.startswith(prefix):
                completion.text = completion.text[len(prefix):]
            return completion
        body = {**sampling, "prompt": await self._head(query) + prefix}
        return await self.teacher.send(body, url=self.completions_url, sample_index=sample_index, variant=variant,
                                       allow_empty=True)

    # -- tokens ------------------------------------------------------------------------------
    async def _find_tokenizer(self) -> str:
        wanted = self.config.tokenizer
        if wanted in ("auto", "endpoint"):
            reply, tokens = await self._tokenize("Hello world")
            if tokens is not None:
                return "endpoint"
            if wanted == "endpoint":
                raise CannotContinue(f"teacher '{self.teacher.name}': POST {self.teacher.server_root}/tokenize failed "
                                     f"({reply.problem or 'no tokens'}); set tokenizer: embedded or hf:NAME")
            log.warning("teacher %s serves no /tokenize (%s): prefixes are cut at the embedded model's tokens",
                        self.teacher.name, reply.problem or reply.status)
            wanted = "embedded"
        self._split = splitter(wanted)
        return wanted

    async def pieces(self, text: str) -> list[str]:
        """The text cut at the teacher's token boundaries; the pieces join back to it exactly."""
        await self.ready()
        if self._split is not None:
            return self._split(text)
        reply, tokens = await self._tokenize(text)
        url = self.teacher.server_root + "/tokenize"
        if tokens is None:
            raise TeacherRefused(f"POST {url}: {reply.problem or 'no tokens'}")
        if tokens and all(isinstance(t, dict) and "piece" in t for t in tokens):
            pieces = _joined_pieces([t["piece"] for t in tokens])
        else:
            pieces = await self._detokenized([t["id"] if isinstance(t, dict) else t for t in tokens])
        if "".join(pieces) != text:  # a tokenizer that normalises text cannot cut it where it stands
            raise TeacherRefused(f"the teacher's tokens of the answer do not join back to it (at {url})")
        return pieces

    async def _tokenize(self, text: str) -> tuple[Reply, list | None]:
        """The server's /tokenize answer, and its tokens (None when it gave none)."""
        reply = await self.teacher.call(self.teacher.server_root + "/tokenize", {"content": text, "with_pieces": True})
        tokens = reply.payload.get("tokens") if reply.status == 200 and isinstance(reply.payload, dict) else None
        return reply, tokens if isinstance(tokens, list) else None

    async def _detokenized(self, ids: list[int]) -> list[str]:
        """Pieces from ids: every prefix detokenized; a token that ends inside a character (or that
        a detokenizer renders differently alone) joins the next one."""
        url = self.teacher.server_root + "/detokenize"
        gate = asyncio.Semaphore(_DETOKENIZE_IN_FLIGHT)

        async def text_of(count: int) -> str:
            async with gate:
                reply = await self.teacher.call(url, {"tokens": ids[:count]})
            content = reply.payload.get("prompt", reply.payload.get("content")) if isinstance(reply.payload, dict) else None
            if not isinstance(content, str):
                raise TeacherRefused(f"POST {url}: {reply.problem or 'no text'}")
            return content

        prefixes = await asyncio.gather(*(text_of(count) for count in range(1, len(ids) + 1)))
        pieces, done = [], ""
        for prefix in prefixes:
            if prefix.startswith(done) and "\ufffd" not in prefix[len(done):]:
                pieces.append(prefix[len(done):])
                done = prefix
        return [piece for piece in pieces if piece]


def _joined_pieces(pieces: list) -> list[str]:
    """llama.cpp gives a piece that is not whole UTF-8 as a list of bytes: join it to the next."""
    joined, pending = [], b""
    for piece in pieces:
        pending += bytes(piece) if isinstance(piece, list) else piece.encode("utf-8")
        try:
            joined.append(pending.decode("utf-8"))
            pending = b""
        except UnicodeDecodeError:
            continue
    if pending:
        joined.append(pending.decode("utf-8", "replace"))
    return joined