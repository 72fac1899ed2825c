"""What every step kind and validator kind builds on: the spec base classes and the context in
which a spec checks its references to other steps, teachers and validators.

A kind itself (spec + what it does) is one module under `synthgen/engine/steps/` or
`synthgen/engine/validators/`; the workflow schema is assembled from those modules' specs."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator

from synthgen.config.base import SEED_VARIABLE, Strict, Template, check_template

# Validator names: a list, or one name written alone (`oracle: answer`).
Names = Annotated[list[str], BeforeValidator(lambda value: [value] if isinstance(value, str) else value)]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Step ids become Parquet columns beside these, so they must not collide with them.
RESERVED_FIELDS = {
    SEED_VARIABLE, "record_id", "seed_id", "sample_index", "workflow", "workflow_hash", "messages", "turns",
    "verdicts", "teacher_model", "created_at", "node", "stage", "reason", "raw",
    "prompt", "chosen", "rejected", "score_chosen", "score_rejected", "margin", "pass_rate",
    "p_before", "p_after", "delta", "samples",
}


class References:
    """Where a step stands in its workflow: the fields produced before it, the step ids that come
    later, the earlier steps that can serve as a pass condition. Checks raise ValueError naming
    the place (`steps[2].from: ...`), which the YAML source turns into `file:line: ...`."""

    def __init__(self, steps: list[StepSpec], teachers: dict[str, Any], validators: dict[str, ValidatorSpec], index: int,
                 known: set[str], later: set[str], conditions: set[str]):
        self.steps, self.teachers, self.validators = steps, teachers, validators
        self.index, self.known, self.later, self.conditions = index, known, later, conditions
        self.where = f"steps[{index}]"

    def field(self, name: str, key: str) -> None:
        if name in self.known and name != SEED_VARIABLE:
            return
        fields = ", ".join(sorted(self.known - {SEED_VARIABLE})) or "none yet"
        problem = "is produced by this or a later step (a cycle)" if name in self.later else "is not a step id"
        raise ValueError(f"{self.where}.{key}: '{name}' {problem}; fields available here: {fields}")

    def template(self, text: str | None, key: str, extra: set[str] = frozenset()) -> None:
        check_template(text, self.known | extra, f"{self.where}.{key}")

    def teacher(self, name: str) -> None:
        if name not in self.teachers:
            raise ValueError(f"{self.where}.teacher: unknown teacher '{name}'; valid: {', '.join(self.teachers)}")

    def validator(self, name: str, key: str, conditions_too: bool = False) -> None:
        """A validator this step runs now (or, with `conditions_too`, an earlier condition step)."""
        if conditions_too and name in self.conditions:
            return
        validators = self.validators
        if name not in validators:
            choices = sorted(validators) + (sorted(self.conditions) if conditions_too else [])
            raise ValueError(f"{self.where}.{key}: unknown validator '{name}'; valid: {', '.join(choices) or 'none defined (add validators:)'}")
        spec = validators[name]
        if spec.runs_last:
            raise ValueError(f"{self.where}.{key}: '{name}' is a {spec.kind} validator: it runs last, on samples about to be accepted")
        check_validator_fields(spec, self.known, f"{self.where}.{key}")

    def earlier_steps(self) -> list[StepSpec]:
        return self.steps[: self.index]


class StepSpec(Strict):
    """A step: its answer (or result) becomes the field named `id`."""

    id: str
    # An earlier step of this kind may be named as a revise loop's `until` (it can pass or fail).
    is_condition: ClassVar[bool] = False
    # A step of this kind picks a best and a worst answer: records get the preference columns.
    makes_pairs: ClassVar[bool] = False
    # The optional record columns (synthgen.engine.records.OPTIONAL_COLUMNS) its records fill.
    record_columns: ClassVar[tuple[str, ...]] = ()

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value) or value in RESERVED_FIELDS:
            raise ValueError(f"step id '{value}' must be a Python identifier and not one of {sorted(RESERVED_FIELDS)}")
        return value

    def check(self, refs: References) -> None:
        """Cross-step checks: every reference points at something that exists earlier."""

    @property
    def fan_out(self) -> int:
        """Samples each incoming sample becomes at this step."""
        return 1

    def answer_format(self) -> str:
        """How a revised answer of this step's field is parsed."""
        return "text"

    def writes_text(self) -> bool:
        """The step's field is free text a teacher wrote (the text quality gates' default)."""
        return False

    def conditions(self) -> list[str]:
        """Condition steps whose verdict this step acts on (they then do not reject by themselves)."""
        return []

    def own_validators(self) -> list[str]:
        """Validators this step runs on something other than the sample's final fields (each
        candidate, say): they are not part of the final gate."""
        return []

    def most_requests(self, steps: list[StepSpec]) -> int | None:
        """The most teacher requests one sample makes at this step (None: no bound known before
        running), for a cost estimate without a run to learn from."""
        return 0


class Example(Strict):
    """A worked example shown as an earlier exchange: small teachers follow formats from these."""

    user: str
    assistant: str


class AskingStep(StepSpec):
    """A step that talks to a teacher."""

    system: Template | None = None
    examples: list[Example] = Field(default_factory=list, description="worked examples, sent as earlier turns")
    teacher: str = "default"
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)

    def most_requests(self, steps: list[StepSpec]) -> int | None:
        return 1

    def check(self, refs: References) -> None:
        refs.teacher(self.teacher)
        refs.template(self.system, "system")
        for number, example in enumerate(self.examples):
            refs.template(example.user, f"examples[{number}].user")
            refs.template(example.assistant, f"examples[{number}].assistant")


class ValidatorSpec(Strict):
    """A named check run on every sample before it is accepted (and by `validate`/`revise` steps).
    Subclasses set `kind: Literal["..."] = "..."`: the YAML says it, or the validator's name does."""

    kind: str
    # Runs after every other validator, only on samples about to be accepted (it claims something).
    runs_last: ClassVar[bool] = False

    def field_refs(self) -> dict[str, str]:
        """The workflow fields this validator reads, by the key that names each."""
        return {}


def check_validator_fields(spec: ValidatorSpec, known: set[str], where: str) -> None:
    for key, name in spec.field_refs().items():
        if name not in known or name == SEED_VARIABLE:
            raise ValueError(f"{where}: validator field {key}: '{name}' is not produced before this point; "
                             f"fields available: {', '.join(sorted(known - {SEED_VARIABLE})) or 'none'}")


def field_list_refs(fields: list[str] | None) -> dict[str, str]:
    """`field_refs` of a validator with an optional `fields:` list."""
    return {f"fields[{i}]": name for i, name in enumerate(fields or [])}
