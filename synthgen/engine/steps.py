"""The step kinds: generate, parse, validate, revise, judge. One async function each, registered
by config class in `STEP_KINDS`; adding a kind is a config model plus one function here.

Each function gets the runner (teachers, validators, `ask`, `check`), its step config and the
sample; it sets the step's field on the sample or raises StepFailed with stage and reason."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from synthgen.config import GenerateStep, JudgeStep, ParseStep, ReviseStep, ValidateStep
from synthgen.engine.parsing import ParseError, check_schema, code_block, json_value, judge_score, parse, regex_groups, think_split
from synthgen.engine.sample import Sample, StepFailed, render_or_fail
from synthgen.engine.validators import Check

REPAIR_PROMPT = (
    "Your answer could not be used: {error}. Reply again with only the corrected JSON, nothing else."
)
JUDGE_SYSTEM = "You are a strict, fair grader. You reply with the score and a one-sentence rationale."


async def generate(runner, step: GenerateStep, sample: Sample) -> None:
    prompt = render_or_fail(step.prompt, sample.context, step.id)
    if step.conversation == "new":
        sample.conversation = _opening(step, step.system, sample)
    sample.conversation.append({"role": "user", "content": prompt})
    sample.set(step.id, await _answer(runner, step, sample, step.parse, "answer"))


async def _answer(runner, step, sample: Sample, kind: str, purpose: str, round_number: int = 0) -> str:
    """Ask, parse; for JSON, one repair request that shows the teacher its own parse error."""
    options = _ask_options(runner, step, kind)
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


def _ask_options(runner, step, kind: str) -> dict:
    options: dict[str, Any] = {}
    if isinstance(step, GenerateStep):
        options = {"stop": step.stop, "on_length": step.on_length, "max_continuations": step.max_continuations}
    if kind == "json" and runner.teachers[step.teacher].config.structured_output:
        schema = getattr(step, "json_schema", None)
        options["response_format"] = (
            {"type": "json_object"} if schema is None
            else {"type": "json_schema", "json_schema": {"name": step.id, "schema": schema}}
        )
    return options


@contextlib.contextmanager
def _side_conversation(sample: Sample, step, system: str | None) -> Iterator[None]:
    """Graders and revisers talk in a conversation of their own: a later `continue` step picks
    up the main one where it was."""
    main = sample.conversation
    sample.conversation = _opening(step, system, sample)
    try:
        yield
    finally:
        sample.conversation = main


def _opening(step, system: str | None, sample: Sample) -> list[dict[str, str]]:
    """A new conversation: the system prompt, then the step's worked examples as earlier turns."""
    opening = [{"role": "system", "content": render_or_fail(system, sample.context, step.id)}] if system else []
    for example in step.examples:
        opening.append({"role": "user", "content": render_or_fail(example.user, sample.context, step.id)})
        opening.append({"role": "assistant", "content": render_or_fail(example.assistant, sample.context, step.id)})
    return opening


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


async def validate(runner, step: ValidateStep, sample: Sample) -> None:
    for name in step.validate_:
        await runner.require(name, sample)
    sample.set(step.id, "passed")


async def revise(runner, step: ReviseStep, sample: Sample) -> None:
    """Check; while it fails, show the teacher its answer and the evidence, take the new answer."""
    kind = step.parse or _parse_of(runner, step.revise)
    rounds: list[dict[str, Any]] = []
    for round_number in range(step.max_rounds + 1):
        outcome = await _condition(runner, step, sample, round_number)
        rounds.append({"round": round_number, "passed": outcome.passed, "detail": outcome.detail})
        sample.set(step.id, rounds)
        if outcome.passed:
            return
        if not outcome.fixable:
            raise StepFailed(f"revise:{step.id}", f"{step.until}: {outcome.detail} (revising {step.revise} cannot fix that)",
                             outcome.evidence)
        if round_number == step.max_rounds:
            raise StepFailed(
                f"revise:{step.id}",
                f"{step.until} still failing after {step.max_rounds} revision round(s): {outcome.detail}",
                outcome.evidence,
            )
        context = {**sample.context, "previous": sample.fields[step.revise], "evidence": outcome.evidence or outcome.detail,
                   "round": round_number + 1}
        with _side_conversation(sample, step, step.system):
            sample.conversation.append({"role": "user", "content": render_or_fail(step.prompt, context, step.id)})
            sample.set(step.revise, await _answer(runner, step, sample, kind, "revise", round_number + 1))


def _parse_of(runner, field: str) -> str:
    for step in runner.workflow.steps:
        if step.id == field and isinstance(step, GenerateStep):
            return step.parse
    return "text"


async def _condition(runner, step: ReviseStep, sample: Sample, round_number: int) -> Check:
    judges = {s.id: s for s in runner.workflow.steps if isinstance(s, JudgeStep)}
    if step.until not in judges:
        return await runner.check(step.until, sample)
    judge_step = judges[step.until]
    if round_number > 0 or step.until not in sample.fields:
        await _score(runner, judge_step, sample, round_number)
    return _judge_gate(judge_step, sample)


async def judge(runner, step: JudgeStep, sample: Sample) -> None:
    await _score(runner, step, sample)
    outcome = _judge_gate(step, sample)
    revised_later = any(isinstance(s, ReviseStep) and s.until == step.id for s in runner.workflow.steps)
    if not outcome.passed and not revised_later:  # a revise loop on this judge decides instead
        raise StepFailed(f"judge:{step.id}", outcome.detail, outcome.evidence)


async def _score(runner, step: JudgeStep, sample: Sample, round_number: int = 0) -> None:
    low, high = step.scale
    rubric = render_or_fail(step.rubric, sample.context, step.id)
    context = {**sample.context, "rubric": rubric, "text": sample.fields[step.judge], "low": low, "high": high}
    with _side_conversation(sample, step, step.system or JUDGE_SYSTEM):
        sample.conversation.append({"role": "user", "content": render_or_fail(step.prompt, context, step.id)})
        text = await runner.ask(step, sample, "judge", round_number=round_number)
    try:
        score, rationale = judge_score(text, low, high)
    except ParseError as exc:
        raise StepFailed(f"judge:{step.id}", f"judge answer unusable: {exc}", text) from None
    sample.set(step.id, {"score": score, "rationale": rationale})


def _judge_gate(step: JudgeStep, sample: Sample) -> Check:
    value = sample.context[step.id]
    score, rationale = value["score"], value["rationale"]
    evidence = f"A grader scored it {score:g} on a scale of {step.scale[0]} to {step.scale[1]}: {rationale}"
    if step.min_score is not None and score < step.min_score:
        outcome = Check(False, f"score {score:g} below the minimum {step.min_score:g}", evidence)
    elif step.must_exceed is not None and score <= sample.context[step.must_exceed]["score"]:
        before = sample.context[step.must_exceed]["score"]
        outcome = Check(False, f"score {score:g} does not exceed {step.must_exceed}'s {before:g}", evidence)
    else:
        outcome = Check(True, f"score {score:g}", evidence)
    sample.verdict(f"judge:{step.id}", outcome)
    return outcome


STEP_KINDS: dict[type, Callable[[Any, Any, Sample], Awaitable[None]]] = {
    GenerateStep: generate,
    ParseStep: parse_field,
    ValidateStep: validate,
    ReviseStep: revise,
    JudgeStep: judge,
}


async def run_step(runner, step, sample: Sample) -> None:
    await STEP_KINDS[type(step)](runner, step, sample)
