"""`judge`: score a field against a rubric; the score and rationale become the field `id`. A judge
can gate (`min_score`, `must_exceed` an earlier judge) and can be a revise loop's `until`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from synthgen.config.base import Template
from synthgen.config.kinds import AskingStep, References
from synthgen.engine.parsing import ParseError, judge_score
from synthgen.engine.sample import Sample, StepFailed, render_or_fail
from synthgen.engine.steps.base import StepKind, side_conversation
from synthgen.engine.validators.base import Check

JUDGE_SYSTEM = "You are a strict, fair grader. You reply with the score and a one-sentence rationale."
DEFAULT_JUDGE_PROMPT = """Grade the following text.

Rubric: {{ rubric }}

Text:
{{ text }}

Give a score from {{ low }} to {{ high }} and one sentence of reason, in exactly this form:
Score: <number>
Reason: <one sentence>"""


class JudgeStep(AskingStep):
    """Score a field against a rubric; the score and rationale become the field named `id`."""

    judge: str
    rubric: Template
    scale: tuple[int, int] = (1, 10)
    min_score: float | None = Field(None, description="a lower score rejects the sample")
    must_exceed: str | None = Field(None, description="an earlier judge step whose score this one must beat")
    prompt: Template = DEFAULT_JUDGE_PROMPT
    temperature: float | None = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(160, ge=1)

    is_condition: ClassVar[bool] = True

    @model_validator(mode="after")
    def _scale(self) -> JudgeStep:
        low, high = self.scale
        if low >= high:
            raise ValueError("scale must be [low, high] with low < high")
        if self.min_score is not None and not low <= self.min_score <= high:
            raise ValueError(f"min_score {self.min_score} is outside the scale [{low}, {high}]")
        return self

    def check(self, refs: References) -> None:
        super().check(refs)
        refs.field(self.judge, "judge")
        judges = {step.id for step in refs.earlier_steps() if isinstance(step, JudgeStep)}
        if self.must_exceed is not None and self.must_exceed not in judges:
            raise ValueError(f"{refs.where}.must_exceed: '{self.must_exceed}' is not an earlier judge step; "
                             f"earlier judge steps: {', '.join(sorted(judges)) or 'none'}")
        refs.template(self.rubric, "rubric")
        refs.template(self.prompt, "prompt", {"rubric", "text", "low", "high"})


async def judge(runner, step: JudgeStep, sample: Sample) -> None:
    await _score(runner, step, sample)
    outcome = _gate(step, sample)
    if not outcome.passed and not runner.is_condition_of_later_step(step.id):  # that step decides instead
        raise StepFailed(f"judge:{step.id}", outcome.detail, outcome.evidence)


async def judge_again(runner, step: JudgeStep, sample: Sample, round_number: int) -> Check:
    """As a revise loop's condition: the score of round 0 stands; later rounds are scored anew."""
    if round_number > 0 or step.id not in sample.fields:
        await _score(runner, step, sample, round_number)
    return _gate(step, sample)


async def _score(runner, step: JudgeStep, sample: Sample, round_number: int = 0) -> None:
    low, high = step.scale
    rubric = render_or_fail(step.rubric, sample.context, step.id)
    context = {**sample.context, "rubric": rubric, "text": sample.fields[step.judge], "low": low, "high": high}
    with side_conversation(sample, step, step.system or JUDGE_SYSTEM):
        sample.conversation.append({"role": "user", "content": render_or_fail(step.prompt, context, step.id)})
        text = await runner.ask(step, sample, "judge", round_number=round_number)
    try:
        score, rationale = judge_score(text, low, high)
    except ParseError as exc:
        raise StepFailed(f"judge:{step.id}", f"judge answer unusable: {exc}", text) from None
    sample.set(step.id, {"score": score, "rationale": rationale})


def _gate(step: JudgeStep, sample: Sample) -> Check:
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


KIND = StepKind("judge", JudgeStep, judge, marker="judge", condition=judge_again)
