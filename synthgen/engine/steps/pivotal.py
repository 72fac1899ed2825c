"""`pivotal_tokens` (marker key: the field to search): Pivotal Token Search over an earlier
generate step's answer. P(success | prefix) is the share of sampled continuations that every
`oracle` validator accepts (verify, exec, ...); the search is `synthgen.engine.pivots`. Each
pivotal token with a sampled alternative that moves P the other way becomes one preference
record: `prompt` = the query plus the answer before the token, `chosen`/`rejected` = the token
that raises P and the one that lowers it. The field `id` holds every pivot found (JSON)."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from synthgen.config.kinds import AskingStep, Names, References
from synthgen.engine.pivots import Counterpart, Pivot, Search
from synthgen.engine.parsing import ParseError, parse
from synthgen.engine.records import PAIR_COLUMNS, PIVOT_COLUMNS
from synthgen.engine.sample import Sample, StepFailed
from synthgen.engine.steps.base import StepKind
from synthgen.engine.steps.generate import GenerateStep

_FIRST_TOKEN_CHARS = 80  # enough text to hold a continuation's first token


class PivotalTokensStep(AskingStep):
    """Pivotal Token Search over the answer in the field `pivotal_tokens`."""

    pivotal_tokens: str = Field(description="the field to search: an earlier generate step's answer (parse: text)")
    oracle: Names = Field(min_length=1, description="validators that decide success (all must pass): verify, exec, ...")
    threshold: float = Field(0.2, gt=0, lt=1, description="a token is pivotal when P(success) changes by this much")
    samples: int = Field(256, ge=2, le=1024, description="most samples behind one estimate of P(success)")
    min_samples: int = Field(16, ge=1, description="first round of samples; rounds double until the comparison is decided")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="of the intervals that end a comparison early")
    span: int = Field(8, ge=0, description="the answer is first cut into segments of at most this many tokens, each "
                      "searched on its own (0: the report's single segment; pivots that cancel inside one are missed)")
    alternatives: int = Field(4, ge=1, le=16, description="sampled tokens tried at a pivot for the other side of its pair")
    parse: Literal["text", "code_block"] = Field(
        "text", description="what the oracle validators see of an answer: the text, or the code block in it")
    budget: int | None = Field(None, ge=1, description="most samples for one answer: a search that would draw more "
                               "stops and rejects the sample (long answers cost more)")
    temperature: float | None = Field(1.0, ge=0, le=2, description="the policy's own sampling: P is estimated under it")

    record_columns: ClassVar[tuple[str, ...]] = PAIR_COLUMNS + PIVOT_COLUMNS

    @model_validator(mode="after")
    def _samples_in_order(self) -> PivotalTokensStep:
        if self.min_samples > self.samples:
            raise ValueError(f"min_samples ({self.min_samples}) is more than samples ({self.samples})")
        return self

    def check(self, refs: References) -> None:
        super().check(refs)
        refs.field(self.pivotal_tokens, "pivotal_tokens")
        source = next(step for step in refs.earlier_steps() if step.id == self.pivotal_tokens)
        if not isinstance(source, GenerateStep) or source.parse != "text":
            raise ValueError(f"{refs.where}.pivotal_tokens: '{self.pivotal_tokens}' must be a generate step with "
                             "parse: text (the search continues the teacher's own answer)")
        for number, name in enumerate(self.oracle):
            refs.validator(name, f"oracle[{number}]")

    def most_requests(self, steps) -> None:
        return None  # as many as the search needs: learn it from a small run

    def own_validators(self) -> list[str]:
        # The searched answer may be wrong (pairs come from right and wrong answers alike).
        return list(self.oracle)


async def search_pivots(runner, step: PivotalTokensStep, sample: Sample) -> None:
    # Here, not at the top: the workflow schema (every kind's spec) loads without HTTP clients.
    from synthgen.engine.continuation import CannotContinue
    from synthgen.engine.teacher import TeacherRefused

    continuer = runner.continuer(step.teacher)
    query = sample.prompt_messages.get(step.pivotal_tokens)
    answer = sample.context[step.pivotal_tokens]
    judged: dict[str, asyncio.Future] = {}

    async def accepted(text: str) -> bool:
        if text not in judged:  # equal continuations are judged once
            judged[text] = asyncio.ensure_future(_oracle(runner, step, sample, text))
        return await judged[text]

    drawn = 0

    async def draw(prefix: str, first: int, count: int) -> list[tuple[bool, str]]:
        nonlocal drawn
        drawn += count
        if step.budget is not None and drawn > step.budget:
            raise StepFailed(step.id, f"sample budget spent: {step.budget} samples did not finish the search of "
                             f"{len(pieces)} tokens (raise budget, or span for fewer segments)")
        completions = await asyncio.gather(*(
            continuer.continue_answer(query, prefix, temperature=step.temperature, max_tokens=step.max_tokens,
                                      sample_index=sample.sample_index, variant=number + 1)
            for number in range(first, first + count)))
        sample.turns.extend(c.turn(step.id, "pts_sample", continuer.teacher.name) for c in completions)
        verdicts = await asyncio.gather(*(accepted(prefix + c.text) for c in completions))
        return [(verdict, c.text) for verdict, c in zip(verdicts, completions)]

    async def first_token(text: str) -> str:
        found = await continuer.pieces(text[:_FIRST_TOKEN_CHARS])
        return found[0] if found else ""

    pieces: list[str] = []
    search = Search(draw, threshold=step.threshold, min_samples=step.min_samples, max_samples=step.samples,
                    confidence=step.confidence)
    try:
        pieces.extend(await continuer.pieces(answer))
        pivots = await search.find(pieces, await accepted(answer), span=step.span)
        counterparts = await asyncio.gather(*(search.counterpart(p, first_token, step.alternatives) for p in pivots))
    except (CannotContinue, TeacherRefused) as exc:
        raise StepFailed(step.id, str(exc)) from None
    sample.set(step.id, [_described(p, c) for p, c in zip(pivots, counterparts)])
    if not pivots:
        start = search.estimates[""].p() if "" in search.estimates else float("nan")
        raise StepFailed(step.id, f"no pivotal token: P(success) {start:.2f} before the answer, "
                         f"{'1' if search.estimates[answer].p() else '0'} for the whole answer ({len(pieces)} tokens, "
                         f"{search.samples_drawn} samples)")
    rows = [_pair(query, p, c) for p, c in zip(pivots, counterparts) if c is not None]
    if not rows:
        raise StepFailed(step.id, f"{len(pivots)} pivotal tokens, none with a sampled alternative that moves "
                         f"P(success) the other way by {step.threshold} (raise samples or alternatives)")
    sample.rows = rows


async def _oracle(runner, step: PivotalTokensStep, sample: Sample, text: str) -> bool:
    """Every oracle validator on the sample with the searched field replaced by `text` (parsed)."""
    try:
        value = parse(step.parse, text)
    except ParseError:
        return False
    view = Sample(context=dict(sample.context), seed_id=sample.seed_id, sample_index=sample.sample_index,
                  prompts=sample.prompts)
    view.set(step.pivotal_tokens, value)
    for name in step.oracle:
        if not (await runner.check(name, view)).passed:
            return False
    return True


def _described(pivot: Pivot, counterpart: Counterpart | None) -> dict:
    return {"position": pivot.position, "token": pivot.token, "p_before": round(pivot.p_before, 4),
            "p_after": round(pivot.p_after, 4), "samples": pivot.samples,
            "alternative": None if counterpart is None else {"token": counterpart.token, "p": round(counterpart.p, 4)}}


def _pair(query: list[dict[str, str]], pivot: Pivot, counterpart: Counterpart) -> dict:
    """TRL preference columns: the prompt ends with the answer so far (an assistant message the
    chosen or rejected token continues)."""
    raises = pivot.delta > 0
    up, down = (pivot.token, counterpart.token) if raises else (counterpart.token, pivot.token)
    p_up, p_down = (pivot.p_after, counterpart.p) if raises else (counterpart.p, pivot.p_after)
    prompt = [*query, {"role": "assistant", "content": pivot.prefix}] if pivot.prefix else list(query)
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": up}],
            "rejected": [{"role": "assistant", "content": down}], "score_chosen": p_up, "score_rejected": p_down,
            "margin": p_up - p_down, "p_before": pivot.p_before, "p_after": pivot.p_after, "delta": pivot.delta,
            "samples": pivot.samples + counterpart.samples}


KIND = StepKind("pivotal_tokens", PivotalTokensStep, search_pivots, marker="pivotal_tokens")
