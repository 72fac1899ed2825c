"""`verify`: the final answer in a field equals an expected one, with no LLM: numbers (fractions,
decimals, percentages, scientific notation), LaTeX (`\\boxed{}`, `\\frac`), algebraic
equivalence (sympy), multiple-choice letters and normalised strings (see synthgen/engine/answers.py).
`expected` is a template, so seed fields reach it: `expected: "{{ seed.meta.answer }}"`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthgen.config.base import Template
from synthgen.config.kinds import ValidatorSpec
from synthgen.engine.answers import final_answer, same_answer
from synthgen.engine.templates import TemplateError, render
from synthgen.engine.validators.base import Check, Inputs, Services, ValidatorKind


class VerifySpec(ValidatorSpec):
    """The final answer in `answer` (after `</think>` if there is one) is `expected`."""

    kind: Literal["verify"] = "verify"
    answer: str = Field(description="the field holding the answer text")
    expected: Template = Field(description='a template for the right answer, e.g. "{{ seed.meta.answer }}"')
    mode: Literal["auto", "number", "expression", "choice", "string"] = Field(
        "auto", description="how answers compare; auto: from the expected answer's form")

    def field_refs(self) -> dict[str, str]:
        return {"answer": self.answer}


class VerifyCheck:
    def __init__(self, name: str, spec: VerifySpec, services: Services):
        self.name, self.spec = name, spec
        self.fields = (spec.answer,)

    async def check(self, inputs: Inputs, record_id: str = "") -> Check:
        try:
            expected = render(self.spec.expected, inputs.fields)
        except TemplateError as exc:
            return Check(False, f"expected answer: {exc}", fixable=False)
        if not expected:
            return Check(False, "the expected answer is empty for this seed", fixable=False)
        found = final_answer(str(inputs.fields.get(self.spec.answer, "")))
        if found.answer is None:
            return Check(False, found.problem, "End with the final answer alone, in \\boxed{...}.")
        if same_answer(found.answer, expected, self.spec.mode):
            return Check(True, f"answer {found.answer} is right")
        # The evidence a reviser sees never contains the expected answer.
        return Check(False, f"answer {found.answer!r} is not the expected {expected!r}",
                     f"Your final answer {found.answer} is not correct. Work it out again.")


KIND = ValidatorKind("verify", VerifySpec, VerifyCheck)
