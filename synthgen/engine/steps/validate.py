"""`validate`: run validators now; a failure rejects the sample with the validator's evidence."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator

from synthgen.config.kinds import References, StepSpec
from synthgen.engine.sample import Sample
from synthgen.engine.steps.base import StepKind


class ValidateStep(StepSpec):
    """Run validators now; a failure rejects the sample with the validator's evidence."""

    validate_: list[str] = Field(alias="validate", min_length=1)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("validate_", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def check(self, refs: References) -> None:
        for name in self.validate_:
            refs.validator(name, "validate")


async def validate(runner, step: ValidateStep, sample: Sample) -> None:
    for name in step.validate_:
        await runner.require(name, sample)
    sample.set(step.id, "passed")


KIND = StepKind("validate", ValidateStep, validate, marker="validate")
