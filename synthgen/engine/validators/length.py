"""`length`: each checked answer has between `min_tokens` and `max_tokens` tokens, counted with
the embedded teacher's vocabulary (offline) or another tokenizer (see synthgen/engine/tokens.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthgen.config.kinds import ValidatorSpec, field_list_refs
from synthgen.engine.tokens import counter
from synthgen.engine.validators.base import Check, Services, TextGate, ValidatorKind


class TokenBounds(ValidatorSpec):
    """Bounds in tokens and the tokenizer that counts them (also the `think` validator's)."""

    min_tokens: int = Field(1, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    tokenizer: str = Field("embedded", description="embedded (the local teacher's vocabulary), whitespace, or hf:NAME")

    @model_validator(mode="after")
    def _bounds(self) -> TokenBounds:
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError(f"max_tokens {self.max_tokens} is below min_tokens {self.min_tokens}")
        return self


class LengthSpec(TokenBounds):
    """Reject answers shorter or longer than bounds in tokens."""

    kind: Literal["length"] = "length"
    fields: list[str] | None = Field(None, description="fields checked (default: every free-text answer)")

    def field_refs(self) -> dict[str, str]:
        return field_list_refs(self.fields)


class LengthCheck(TextGate):
    passed = "within bounds"

    def __init__(self, name: str, spec: LengthSpec, services: Services):
        super().__init__(name, spec, services)
        self.count, _ = counter(spec.tokenizer)

    def problem(self, name: str, text: str) -> Check | None:
        [tokens] = self.count([text])
        if tokens < self.spec.min_tokens:
            return Check(False, f"{name}: {tokens} tokens, under the minimum {self.spec.min_tokens}",
                         f"Your answer is too short ({tokens} tokens); write at least {self.spec.min_tokens}.")
        if self.spec.max_tokens is not None and tokens > self.spec.max_tokens:
            return Check(False, f"{name}: {tokens} tokens, over the maximum {self.spec.max_tokens}",
                         f"Your answer is too long ({tokens} tokens); keep it under {self.spec.max_tokens}.")
        return None


def prepare(name: str, spec: TokenBounds, workflow) -> None:
    """Build the tokenizer once (the embedded one is read from the model file, then cached)."""
    counter(spec.tokenizer)


KIND = ValidatorKind("length", LengthSpec, LengthCheck, prepare=prepare)
