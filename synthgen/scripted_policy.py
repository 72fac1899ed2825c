"""A scripted policy whose chance of success is known exactly at every prefix: the stand-in
teacher that Pivotal Token Search is tested and benchmarked against.

A problem is a run of filler words with decisions planted in it. At a decision the policy writes
one of two words (the first with probability `q`), which moves P(success) up or down (as a
martingale: the expected P after the decision is the P before); the answer ends `#### 42` (right)
with the P reached, else `#### 41`. So P(success | prefix) is known exactly for every prefix, and
the pivotal tokens of any answer are known before any search runs. Asked plainly with sampling
seed 0 (a workflow's first answer), the policy gives its planted answer; with any other seed, and
continuing any prefix, it samples.

Served over the scripted teacher (real HTTP), in the ways real servers differ:
- chat completions, continuing a final assistant message (vLLM's `continue_final_message`; with
  `echo_prefix` the answer repeats the prefix, as llama.cpp's does);
- `/v1/completions` on a ChatML prompt, `/apply-template` (llama.cpp);
- `/tokenize` with pieces (llama.cpp) or ids only (vLLM, then `/detokenize`).
The problem travels in the query: `POLICY: {json}` in the user message."""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field

from synthgen.engine.continuation import chatml
from synthgen.scripted_teacher import Reply, ScriptedTeacher, is_generation

MARK = "POLICY: "
RIGHT, WRONG = "42", "41"
_ASSISTANT = chatml([])  # where the assistant's text begins in a ChatML prompt


@dataclass
class Decision:
    at: int  # word index in the answer
    words: tuple[str, str]
    q: float  # probability of the first word
    gap: float  # P(success) after the first word minus after the second (where P leaves room)

    def step(self, p: float, option: int) -> float:
        """P(success) after taking `option` where it was `p` before: the decision moves P by
        (1-q)·gap up or q·gap down, so P stays a martingale and within [0, 1]."""
        gap = min(self.gap, p / self.q, (1 - p) / (1 - self.q))
        return p + (1 - self.q) * gap if option == 0 else p - self.q * gap


@dataclass
class Problem:
    length: int  # filler and decision words before the answer line
    start: float  # P(success) before the answer
    decisions: list[Decision] = field(default_factory=list)
    answer: list[int] = field(default_factory=list)  # the options of the policy's first answer
    code: bool = False  # the answer ends in a Python block that asserts the answer word

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Problem:
        data = json.loads(text)
        return cls(data["length"], data["start"], [Decision(d["at"], tuple(d["words"]), d["q"], d["gap"])
                                                   for d in data["decisions"]], data["answer"], data["code"])

    def word(self, index: int) -> str:
        return f"w{index}"

    @property
    def closing(self) -> tuple[str, str]:
        """What comes around the answer word: a `####` line, or (code) a Python block asserting it."""
        return ("\n```python\nassert 42 ==", "\n```") if self.code else ("\n####", "")

    @property
    def answer_index(self) -> int:
        """The answer word's index among the answer's words."""
        return self.length + len(self.closing[0].split())

    def p_of_prefix(self, prefix: str) -> float:
        """P(success | the answer begins with `prefix`, cut at word boundaries): exact."""
        words = prefix.split()
        if len(words) > self.answer_index:  # the answer word is written
            return 1.0 if words[self.answer_index] == RIGHT else 0.0
        p = self.start
        for decision in self.decisions:
            if decision.at >= len(words) or words[decision.at] not in decision.words:
                break
            p = decision.step(p, decision.words.index(words[decision.at]))
        return p

    def continuation(self, prefix: str, rng: random.Random, options: list[int] | None = None) -> str:
        """The rest of an answer that begins with `prefix` (cut at the policy's tokens): its open
        decisions sampled (or taken from `options`), then the answer word, right with the P
        reached."""
        words = prefix.split()
        p, chosen = self.start, []
        for n, decision in enumerate(self.decisions):
            if decision.at < len(words) and words[decision.at] in decision.words:
                option = decision.words.index(words[decision.at])
            else:
                option = options[n] if options is not None else 0 if rng.random() < decision.q else 1
            chosen.append(option)
            p = decision.step(p, option)
        if len(words) > self.answer_index:
            answer = words[self.answer_index]
        else:
            answer = RIGHT if rng.random() < p else WRONG
        at = {d.at: d.words[o] for d, o in zip(self.decisions, chosen)}
        head, tail = self.closing
        whole = " ".join(at.get(i, self.word(i)) for i in range(self.length)) + head + " " + answer + tail
        return "".join(pieces(whole)[len(pieces(prefix)):])


def plant(rng: random.Random, length: int = 220, pivots: int = 3, near_misses: int = 4, code: bool = False) -> Problem:
    """A problem and the policy's first answer to it, in which `pivots` decisions move P(success)
    by 0.3 to 0.45 (up or down at random where P has room for it) and `near_misses` move it by
    about 0.05; the answer word at the end is right with the P reached."""
    places = sorted(rng.sample(range(4, length - 4, 3), pivots + near_misses))
    kinds = ["pivot"] * pivots + ["near"] * near_misses
    rng.shuffle(kinds)
    p = rng.uniform(0.05, 0.95)
    problem = Problem(length, p, code=code)
    for at, kind in zip(places, kinds):
        words = (f"a{at}", f"b{at}")
        if kind == "pivot":
            size = rng.uniform(0.3, 0.45)
            down = p - size >= 0.02 and (p + size > 0.98 or rng.random() < 0.5)
            room = rng.uniform(0.05, 0.15)  # how far the other option moves P
            q = size / (size + room) if down else room / (size + room)
            decision, option = Decision(at, words, q, size + room), 1 if down else 0
        else:
            decision, option = Decision(at, words, 0.5, rng.uniform(0.09, 0.11)), rng.randrange(2)
        problem.decisions.append(decision)
        problem.answer.append(option)
        p = decision.step(p, option)
    return problem


def first_answer(problem: Problem, rng: random.Random) -> str:
    """The answer the policy gives when asked plainly (its planted decisions)."""
    return problem.continuation("", rng, problem.answer)


ORACLES = {  # the oracle validator for answers ending in a `####` line, or in a Python block
    "verify": f'{{kind: verify, answer: solution, expected: "{RIGHT}"}}',
    "exec": "{kind: exec, code: solution, timeout_s: 5}",
}


def search_workflow(url: str, *, style: str = "auto", tokenizer: str = "auto", oracle: str = "verify",
                    **search: object) -> str:
    """The workflow YAML that tests and benchmarks search this policy's answers with: one answer,
    then `pivotal_tokens` with the given options; the oracle validator verifies the `####` answer,
    or runs the answer's code block in the sandbox (`exec`, for problems with `code`)."""
    if oracle == "exec":
        search.setdefault("parse", "code_block")
    options = "".join(f"\n    {key}: {value}" for key, value in search.items())
    return f"""name: pts
seeds: {{path: seeds.jsonl, kind: qa}}
teacher: {{base_url: "{url}", model: policy, continuation: {style}, tokenizer: {tokenizer}, max_tokens: 1024, max_in_flight: 64}}
steps:
  - id: solution
    prompt: "{{{{ seed.text }}}}"
  - id: pivots
    pivotal_tokens: solution
    oracle: answer{options}
validators:
  answer: {ORACLES[oracle]}
messages:
  - {{role: user, content: "{{{{ seed.text }}}}"}}
  - {{role: assistant, content: "{{{{ solution }}}}"}}
"""


def truth(problem: Problem, answer: str) -> list[float]:
    """The exact P(success) before each word of an answer and after the last (word pieces)."""
    words = answer.split()
    return [problem.p_of_prefix(" ".join(words[:i])) for i in range(len(words) + 1)]


def pieces(text: str) -> list[str]:
    """The policy's tokens: words, each with the space before it."""
    return re.findall(r"\s*\S+|\s+$", text)


class PolicyServer(ScriptedTeacher):
    """The scripted policy on real HTTP. `pieces_in_tokenize`: llama.cpp's /tokenize (pieces) or
    vLLM's (ids; pieces through /detokenize). `echo_prefix`: prefill answers repeat the prefix.
    Without `prefill`, `continue_final_message` is refused (HTTP 400, as OpenAI's API does);
    without `completions`, neither /v1/completions nor /apply-template is served."""

    def __init__(self, *, echo_prefix: bool = False, pieces_in_tokenize: bool = True, latency_s: float = 0.0,
                 prefill: bool = True, completions: bool = True):
        self.echo_prefix = echo_prefix
        self.pieces_in_tokenize = pieces_in_tokenize
        self.prefill = prefill
        self.vocabulary: dict[str, int] = {}
        routes = {"/tokenize": self._tokenize, "/detokenize": self._detokenize}
        if completions:
            routes |= {"/v1/completions": self._complete, "/apply-template": self._apply_template}
        super().__init__(self._chat, latency_s=latency_s, routes=routes)

    def generations(self) -> list[dict]:
        """Every generation request the server saw (chat and completions)."""
        with self._lock:
            return [body for body, path in zip(self.bodies, self.paths) if is_generation(path)]

    def _chat(self, messages: list[dict], body: dict) -> Reply:
        if "continue_final_message" in body and not self.prefill:  # as OpenAI's API answers it
            return Reply("Unrecognized request argument supplied: continue_final_message", status=400)
        query = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        continues = messages[-1]["role"] == "assistant" and self.prefill  # else it answers anew
        prefix = messages[-1]["content"] if continues else ""
        problem = _problem(query)
        if problem is not None and not continues and not body.get("seed"):
            return Reply(first_answer(problem, _rng(body, "")))
        text = self._continue(query, prefix, body)
        return Reply(prefix + text if self.echo_prefix and prefix else text)

    def _complete(self, body: dict) -> tuple[int, dict]:
        prompt = str(body.get("prompt", ""))
        head, _, prefix = prompt.rpartition(_ASSISTANT)
        text = self._continue(head, prefix, body)
        return 200, {"object": "text_completion", "model": body.get("model", "scripted"),
                     "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}}

    def _continue(self, query: str, prefix: str, body: dict) -> str:
        problem = _problem(query)
        if problem is None:  # the continuation probe, or a stray prompt: count on
            return " six, seven, eight," if prefix else "one, two, three"
        return problem.continuation(prefix, _rng(body, prefix))

    def _apply_template(self, body: dict) -> tuple[int, dict]:
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "assistant":
            return 200, {"prompt": chatml(messages[:-1]) + messages[-1]["content"]}
        return 200, {"prompt": chatml(messages)}

    def _id(self, piece: str) -> int:
        with self._lock:
            return self.vocabulary.setdefault(piece, len(self.vocabulary))

    def _tokenize(self, body: dict) -> tuple[int, dict]:
        found = pieces(str(body.get("content", "")))
        if self.pieces_in_tokenize and body.get("with_pieces"):
            return 200, {"tokens": [{"id": self._id(p), "piece": p} for p in found]}
        return 200, {"tokens": [self._id(p) for p in found]}

    def _detokenize(self, body: dict) -> tuple[int, dict]:
        with self._lock:
            words = {i: p for p, i in self.vocabulary.items()}
        return 200, {"prompt": "".join(words.get(i, "") for i in body.get("tokens", []))}


def _rng(body: dict, prefix: str) -> random.Random:
    """Sampling as the request's seed says: the same request gets the same answer."""
    return random.Random(hashlib.sha256(f"{body.get('seed')}|{body.get('temperature')}|{prefix}".encode()).digest())


def _problem(text: str) -> Problem | None:
    start = text.rfind(MARK)
    if start < 0:
        return None
    try:
        return Problem.from_json(text[start + len(MARK):].split("\n", 1)[0].split("<|im_end|>", 1)[0])
    except (ValueError, KeyError, TypeError):
        return None
