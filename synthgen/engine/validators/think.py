"""`think`: a reasoning trace in the Phi-4-reasoning form: one `<think>...</think>` block first,
then the answer; the reasoning within token bounds, the answer not empty. (Repetition inside the
trace is the `repetition` validator's; the answer's correctness is `verify`'s.)"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthgen.engine.tokens import counter
from synthgen.engine.validators.base import Check, Inputs, Services, ValidatorKind
from synthgen.engine.validators.length import TokenBounds, prepare

OPEN, CLOSE = "<think>", "</think>"


class ThinkSpec(TokenBounds):
    """One `<think>` block first, then a non-empty answer; the reasoning's length in tokens bounded
    (`max_tokens`: excessive length is penalised)."""

    kind: Literal["think"] = "think"
    field: str = Field(description="the field holding the whole trace")
    min_tokens: int = Field(20, ge=0, description="the reasoning inside <think> has at least this many tokens")

    def field_refs(self) -> dict[str, str]:
        return {"field": self.field}


class ThinkCheck:
    def __init__(self, name: str, spec: ThinkSpec, services: Services):
        self.name, self.spec = name, spec
        self.fields = (spec.field,)
        self.count, _ = counter(spec.tokenizer)

    async def check(self, inputs: Inputs, record_id: str = "") -> Check:
        text = str(inputs.fields.get(self.spec.field, "")).strip()
        form = f"Write your reasoning inside {OPEN}...{CLOSE} first, then the final answer after {CLOSE}."
        if not text.startswith(OPEN):
            return Check(False, f"the trace does not start with {OPEN}", form)
        if text.count(OPEN) != 1 or text.count(CLOSE) != 1:
            return Check(False, f"the trace needs exactly one {OPEN} and one {CLOSE} "
                                f"(found {text.count(OPEN)} and {text.count(CLOSE)})", form)
        reasoning, answer = text[len(OPEN):].split(CLOSE, 1)
        if not answer.strip():
            return Check(False, f"nothing after {CLOSE}: the answer is missing", form)
        [tokens] = self.count([reasoning])
        if tokens < self.spec.min_tokens:
            return Check(False, f"reasoning of {tokens} tokens, under the minimum {self.spec.min_tokens}",
                         f"Reason step by step: at least {self.spec.min_tokens} tokens of reasoning.")
        if self.spec.max_tokens is not None and tokens > self.spec.max_tokens:
            return Check(False, f"reasoning of {tokens} tokens, over the maximum {self.spec.max_tokens}",
                         f"Reason more concisely: at most {self.spec.max_tokens} tokens.")
        return Check(True, f"reasoning of {tokens} tokens, then an answer")


KIND = ValidatorKind("think", ThinkSpec, ThinkCheck, prepare=prepare)
