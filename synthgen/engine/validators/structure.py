"""`structure`: an answer must be whole: no code fence left open, not stopped mid-sentence."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthgen.config.kinds import ValidatorSpec, field_list_refs
from synthgen.engine.textstats import cut_off, open_fence
from synthgen.engine.validators.base import Check, TextGate, ValidatorKind


class StructureSpec(ValidatorSpec):
    """Reject answers with an unclosed code fence or cut off mid-sentence."""

    kind: Literal["structure"] = "structure"
    fields: list[str] | None = Field(None, description="fields checked (default: every free-text answer)")
    whole_sentences: bool = Field(True, description="an answer must not end mid-sentence")

    def field_refs(self) -> dict[str, str]:
        return field_list_refs(self.fields)


class StructureCheck(TextGate):
    passed = "whole"

    def problem(self, name: str, text: str) -> Check | None:
        if open_fence(text):
            return Check(False, f"{name}: a code fence is left open", "Close every ``` code block you open.")
        if self.spec.whole_sentences and cut_off(text):
            return Check(False, f"{name}: ends mid-sentence ({text.rstrip()[-30:]!r})",
                         "Your answer stops in the middle of a sentence. Finish it.")
        return None


KIND = ValidatorKind("structure", StructureSpec, StructureCheck)
