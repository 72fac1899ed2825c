"""`repetition`: an answer that says the same thing over and over (a sentence ten times, a loop
of lines) is rejected with the measured share: repeated lines, and characters inside word
n-grams that occur more than once (Gopher's rule; the Phi-4-reasoning reward penalises it too)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthgen.config.kinds import ValidatorSpec, field_list_refs
from synthgen.engine.textstats import duplicate_line_fraction, duplicate_ngram_fraction, words
from synthgen.engine.validators.base import Check, TextGate, ValidatorKind


class RepetitionSpec(ValidatorSpec):
    """Reject answers with too many repeated lines or repeated word n-grams."""

    kind: Literal["repetition"] = "repetition"
    fields: list[str] | None = Field(None, description="fields checked (default: every free-text answer)")
    max_repeated_lines: float = Field(0.3, ge=0, le=1, description="share of non-empty lines that repeat an earlier one")
    max_repeated_ngrams: float = Field(0.3, ge=0, le=1, description="share of characters inside repeated word n-grams")
    ngram: int = Field(5, ge=2, le=13)

    def field_refs(self) -> dict[str, str]:
        return field_list_refs(self.fields)


class RepetitionCheck(TextGate):
    passed = "no repetition"

    def problem(self, name: str, text: str) -> Check | None:
        spec = self.spec
        lines = duplicate_line_fraction(text)
        if lines > spec.max_repeated_lines:
            return Check(False, f"{name}: {lines:.0%} of its lines are repeats", "Your answer repeats lines. Say each thing once.")
        grams = duplicate_ngram_fraction(words(text), spec.ngram)
        if grams > spec.max_repeated_ngrams:
            return Check(False, f"{name}: {grams:.0%} of its text is repeated {spec.ngram}-word runs",
                         "Your answer repeats itself. Say each thing once.")
        return None


KIND = ValidatorKind("repetition", RepetitionSpec, RepetitionCheck)
