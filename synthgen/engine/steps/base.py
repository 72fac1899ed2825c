"""What a step kind declares (`StepKind`), and what the asking kinds share: a new conversation
with worked examples, a side conversation for graders and revisers, and one answer parsed (with
one repair request for JSON)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from synthgen.config.kinds import StepSpec
from synthgen.engine.parsing import ParseError, parse
from synthgen.engine.sample import Sample, StepFailed, render_or_fail
from synthgen.engine.validators.base import Check

REPAIR_PROMPT = "Your answer could not be used: {error}. Reply again with only the corrected JSON, nothing else."

# The runner (synthgen.engine.workflow.WorkflowRunner) is passed in as `runner`: it offers
# ask, check, require, condition, the workflow and its teachers.
StepFunction = Callable[[Any, Any, Sample], Awaitable[None]]
ConditionFunction = Callable[[Any, Any, Sample, int], Awaitable[Check]]


@dataclass(frozen=True)
class StepKind:
    name: str
    spec: type[StepSpec]
    run: StepFunction
    # The YAML key that says a step is of this kind (`from` for parse); one kind has none.
    marker: str | None = None
    # For kinds that can be a revise loop's `until`: check the sample again in a given round.
    condition: ConditionFunction | None = None


async def answer(runner, step, sample: Sample, kind: str, purpose: str, options: dict, round_number: int = 0) -> str:
    """Ask, parse; for JSON, one repair request that shows the teacher its own parse error."""
    options = {**options, **_format_options(runner, step, kind)}
    text = await runner.ask(step, sample, purpose, round_number=round_number, **options)
    schema = getattr(step, "json_schema", None)
    try:
        return parse(kind, text, schema)
    except ParseError as exc:
        if kind != "json":
            raise StepFailed(step.id, f"parse ({kind}): {exc}", text) from None
        first_error = exc
    sample.conversation.append({"role": "user", "content": REPAIR_PROMPT.format(error=first_error)})
    text = await runner.ask(step, sample, "repair", round_number=round_number, **options)
    try:
        return parse(kind, text, schema)
    except ParseError as exc:
        raise StepFailed(step.id, f"parse (json): {exc} (after one repair request)", text) from None


def _format_options(runner, step, kind: str) -> dict:
    if kind != "json" or not runner.teachers[step.teacher].config.structured_output:
        return {}
    schema = getattr(step, "json_schema", None)
    return {"response_format": {"type": "json_object"} if schema is None
            else {"type": "json_schema", "json_schema": {"name": step.id, "schema": schema}}}


@contextlib.contextmanager
def side_conversation(sample: Sample, step, system: str | None) -> Iterator[None]:
    """Graders and revisers talk in a conversation of their own: a later `continue` step picks
    up the main one where it was."""
    main = sample.conversation
    sample.conversation = opening(step, system, sample)
    try:
        yield
    finally:
        sample.conversation = main


def opening(step, system: str | None, sample: Sample) -> list[dict[str, str]]:
    """A new conversation: the system prompt, then the step's worked examples as earlier turns."""
    messages = [{"role": "system", "content": render_or_fail(system, sample.context, step.id)}] if system else []
    for example in step.examples:
        messages.append({"role": "user", "content": render_or_fail(example.user, sample.context, step.id)})
        messages.append({"role": "assistant", "content": render_or_fail(example.assistant, sample.context, step.id)})
    return messages
