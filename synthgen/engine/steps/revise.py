"""`revise`: critique-and-revise. While `until` (a validator, or an earlier condition step such
as a judge) fails, show the teacher its answer and the evidence and replace the field `revise`
with the new answer, at most `max_rounds` times."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthgen.config.base import Template
from synthgen.config.kinds import AskingStep, References
from synthgen.engine.sample import Sample, StepFailed, render_or_fail
from synthgen.engine.steps.base import StepKind, answer, side_conversation

DEFAULT_REVISE_PROMPT = """Your previous answer:
{{ previous }}

It did not pass this check:
{{ evidence }}

Write the complete corrected answer. Keep the same format as before."""


class ReviseStep(AskingStep):
    """Critique-and-revise until a validator or a judge step passes, within `max_rounds`."""

    revise: str
    until: str = Field(description="a validator, or a judge step, that must pass")
    max_rounds: int = Field(ge=1, le=10, description="every revise loop needs this bound on its rounds")
    prompt: Template = DEFAULT_REVISE_PROMPT
    parse: Literal["text", "code_block", "json"] | None = Field(None, description="default: the revised step's parse")

    def most_requests(self, steps) -> int:
        # Each round: the revision, and the judge's verdict again when `until` is a judge step.
        return self.max_rounds * (2 if any(step.id == self.until for step in steps) else 1)

    def check(self, refs: References) -> None:
        super().check(refs)
        refs.field(self.revise, "revise")
        refs.validator(self.until, "until", conditions_too=True)
        refs.template(self.prompt, "prompt", {"previous", "evidence", "round"})

    def conditions(self) -> list[str]:
        return [self.until]


# Evidence shown to a reviser: tracebacks of several failing tests ran to 10k+ characters and
# overflowed a small teacher's context (2,048 tokens for the embedded one) with the prompt around
# them. The first failure's start and the end (the assertion that failed) say what to fix.
MAX_EVIDENCE_CHARS = 1600


def shortened(text: str, limit: int = MAX_EVIDENCE_CHARS) -> str:
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3):]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters left out ...]\n{tail}"


async def revise(runner, step: ReviseStep, sample: Sample) -> None:
    """Check; while it fails, show the teacher its answer and the evidence, take the new answer."""
    kind = step.parse or runner.workflow.step(step.revise).answer_format()
    rounds: list[dict[str, Any]] = []
    for round_number in range(step.max_rounds + 1):
        outcome = await runner.condition(step.until, sample, round_number)
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
        context = {**sample.context, "previous": sample.fields[step.revise],
                   "evidence": shortened(outcome.evidence or outcome.detail), "round": round_number + 1}
        with side_conversation(sample, step, step.system):
            sample.conversation.append({"role": "user", "content": render_or_fail(step.prompt, context, step.id)})
            sample.set(step.revise, await answer(runner, step, sample, kind, "revise", {}, round_number + 1))


KIND = StepKind("revise", ReviseStep, revise, marker="revise")
