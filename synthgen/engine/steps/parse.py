"""`parse` (marker key `from`): extract structure from an earlier field: a code block, JSON,
regex named groups, or a `<think>...</think>` reasoning/answer split. Structured results are
visible to later templates as `{{ id.name }}`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from synthgen.config.kinds import References, StepSpec
from synthgen.engine.parsing import ParseError, check_schema, code_block, json_value, regex_groups, think_split
from synthgen.engine.sample import Sample, StepFailed
from synthgen.engine.steps.base import StepKind


class ParseStep(StepSpec):
    """Extract structure from an earlier field (code block, JSON, regex groups, think split)."""

    from_: str = Field(alias="from")
    parse: Literal["code_block", "json", "regex", "think"]
    pattern: str | None = Field(None, description="with parse: regex, named groups become sub-fields")
    json_schema: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _options_match(self) -> ParseStep:
        if (self.parse == "regex") != (self.pattern is not None):
            raise ValueError("pattern is needed with parse: regex, and only there")
        if self.pattern is not None:
            if "{{" in self.pattern or "{%" in self.pattern:
                raise ValueError("pattern is a regular expression, not a template: it would match '{{ ... }}' literally; "
                                 "to compare with a seed field use a verify validator (expected: \"{{ seed.meta.answer }}\")")
            try:
                compiled = re.compile(self.pattern, re.DOTALL)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
            if not compiled.groupindex:
                raise ValueError("pattern needs named groups, e.g. (?P<question>...)")
        if self.json_schema is not None and self.parse != "json":
            raise ValueError("json_schema needs parse: json")
        return self

    def check(self, refs: References) -> None:
        refs.field(self.from_, "from")


async def parse_field(runner, step: ParseStep, sample: Sample) -> None:
    raw = sample.fields[step.from_]
    try:
        if step.parse == "code_block":
            value: Any = code_block(raw)
        elif step.parse == "json":
            value = json_value(raw)
            if step.json_schema is not None:
                check_schema(value, step.json_schema)
        elif step.parse == "regex":
            value = regex_groups(raw, step.pattern)
        else:
            value = think_split(raw)
    except ParseError as exc:
        raise StepFailed(step.id, f"parse ({step.parse}) of {step.from_}: {exc}", raw) from None
    sample.set(step.id, value)


KIND = StepKind("parse", ParseStep, parse_field, marker="from")
