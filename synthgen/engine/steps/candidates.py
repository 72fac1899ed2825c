"""`candidates` (marker key `candidates: N`): N answers to one prompt, each with its own sampling
seed and cache key; the field `id` is the list of the usable ones (an answer cut at max_tokens or
unparsable is dropped; fewer than two rejects the sample). A `select` step then picks the best
and worst. Unlike a generate step's `n`, the candidates stay in one sample, so they can be compared."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from pydantic import Field

from synthgen.config.base import Template
from synthgen.config.kinds import AskingStep, References
from synthgen.engine.parsing import ParseError, parse
from synthgen.engine.sample import Sample, StepFailed, render_or_fail
from synthgen.engine.steps.base import StepKind, opening

log = logging.getLogger(__name__)


class CandidatesStep(AskingStep):
    """N answers to one prompt; the field named `id` is their list."""

    candidates: int = Field(ge=2, le=16, description="how many answers to ask for")
    prompt: Template
    parse: Literal["text", "code_block"] = "text"
    temperature: float | None = Field(0.8, ge=0, le=2, description="above 0: the candidates should differ")
    stop: list[str] | None = Field(None, max_length=4)

    def check(self, refs: References) -> None:
        super().check(refs)
        refs.template(self.prompt, "prompt")

    def most_requests(self, steps) -> int:
        return self.candidates


async def ask_candidates(runner, step: CandidatesStep, sample: Sample) -> None:
    prompt = render_or_fail(step.prompt, sample.context, step.id)
    sent = [*opening(step, step.system, sample), {"role": "user", "content": prompt}]
    sample.prompts[step.id] = prompt
    sample.prompt_messages[step.id] = sent
    views = [Sample(context=sample.context, seed_id=sample.seed_id, sample_index=sample.sample_index,
                    conversation=list(sent)) for _ in range(step.candidates)]
    texts = await asyncio.gather(*(_one(runner, step, view, k) for k, view in enumerate(views)))
    for view in views:
        sample.turns.extend(view.turns)
    answers, dropped = [], []
    for k, text in enumerate(texts):
        try:
            if isinstance(text, StepFailed):
                raise ParseError(text.reason)
            answers.append(parse(step.parse, text))
        except ParseError as exc:
            dropped.append(f"candidate {k}: {exc}")
    if len(answers) < 2:  # a cut-off or unparsable answer is no candidate; one is no choice
        raise StepFailed(step.id, f"{len(answers)} of {step.candidates} candidates usable: {'; '.join(dropped[:3])}")
    distinct = len(set(answers))
    if distinct < len(answers):
        log.warning("%s: only %d distinct of %d candidates for seed %s (raise temperature, or the teacher "
                    "ignores the sampling seed)", step.id, distinct, len(answers), sample.seed_id)
    sample.set(step.id, answers)


async def _one(runner, step: CandidatesStep, view: Sample, k: int) -> str | StepFailed:
    try:
        return await runner.ask(step, view, "candidate", stop=step.stop, variant=k)
    except StepFailed as exc:  # cut at max_tokens, refused: this candidate is out, not the sample
        return exc


KIND = StepKind("candidates", CandidatesStep, ask_candidates, marker="candidates")
