"""`select` (marker key `select: <candidates step>`): score an earlier step's candidates and keep
the best and the worst, their scores and the margin between them — the SFT answer and the DPO
pair. Scores come from a judge (each candidate on a scale), from pairwise judging (every pair in
both orders, which cancels a judge's preference for a position), or from a verifier (a validator:
1 passes, 0 fails; its pass rate over the candidates is the prompt's difficulty).

The field `id` is `{best, worst, best_score, worst_score, margin, scores, best_index,
worst_index, pass_rate}` (and, by verifier, each candidate's first failing check). Gates: `min_margin` (ties and identical texts never make a pair),
`min_score`/`max_score` on the best, `pass_band` on the pass rate."""

from __future__ import annotations

import asyncio
import collections
import re
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from synthgen.config.base import Template
from synthgen.config.kinds import AskingStep, Names, References
from synthgen.engine.parsing import ParseError, judge_score
from synthgen.engine.records import PAIR_COLUMNS
from synthgen.engine.sample import Sample, StepFailed, render_or_fail
from synthgen.engine.steps.base import StepKind, opening
from synthgen.engine.steps.candidates import CandidatesStep
from synthgen.engine.steps.judge import JUDGE_SYSTEM
from synthgen.engine.validators.base import Check, Inputs

GRADE_PROMPT = """Grade the answer to this request.

Request:
{{ request }}

Rubric: {{ rubric }}

Answer:
{{ text }}

An answer that repeats the request, is cut off, contradicts itself or does not answer scores {{ low }}.
Give a score from {{ low }} to {{ high }} and one sentence of reason, in exactly this form:
Score: <number>
Reason: <one sentence>"""

COMPARE_PROMPT = """Two answers to the same request. Which is better by the rubric?

Request:
{{ request }}

Rubric: {{ rubric }}

Answer A:
{{ a }}

Answer B:
{{ b }}

Reply in exactly this form:
Better: <A, B or tie>
Reason: <one sentence>"""

_BETTER = re.compile(r"better\s*:\s*\**\s*(A|B|tie)\b", re.IGNORECASE)
# Small judges often just name the answer: "A", "Answer B is better."
_NAMED = re.compile(r"^\W*(?:answer\s*)?(A|B)\b")
# More grades or comparisons without a verdict than this share: the judge is not judging.
MAX_UNUSABLE_SHARE = 0.25


class SelectStep(AskingStep):
    """Best and worst of an earlier step's candidates, by judge, pairwise judge, or verifier."""

    select: str = Field(description="the candidates step whose answers are compared")
    by: Literal["judge", "pairwise", "verifier"] = "judge"
    rubric: Template | None = Field(None, description="what a good answer is (judge, pairwise)")
    scale: tuple[int, int] = (1, 10)
    prompt: Template | None = Field(None, description="the grading (judge) or comparing (pairwise) prompt")
    verifier: Names | None = Field(
        None, description="with by: verifier, validators reading the candidates step: a candidate passing all scores 1")
    require: Names = Field(
        default_factory=list, description="validators reading the candidates step that a candidate must pass to be "
        "scored at all (novelty, repetition, structure: an echo never becomes the best)")
    min_margin: float | None = Field(None, gt=0, description="a smaller best-worst margin rejects the sample: no pair")
    min_score: float | None = Field(None, description="the best candidate must score at least this")
    max_score: float | None = Field(None, description="a best candidate above this rejects: the prompt is too easy")
    pass_band: tuple[float, float] | None = Field(
        None, description="with by: verifier, keep prompts whose pass rate is within [low, high], e.g. [0.1, 0.9]")
    temperature: float | None = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(160, ge=1)

    makes_pairs: ClassVar[bool] = True
    record_columns: ClassVar[tuple[str, ...]] = PAIR_COLUMNS

    @model_validator(mode="after")
    def _options(self) -> SelectStep:
        if self.by == "verifier":
            if self.verifier is None:
                raise ValueError("by: verifier needs verifier: <a validator name>")
            if self.rubric is not None or self.prompt is not None:
                raise ValueError("by: verifier scores with the validator: rubric and prompt do not apply")
        else:
            if self.rubric is None:
                raise ValueError(f"by: {self.by} needs a rubric")
            if self.verifier is not None or self.pass_band is not None:
                raise ValueError("verifier and pass_band go with by: verifier")
        low, high = self.scale
        if low >= high:
            raise ValueError("scale must be [low, high] with low < high")
        if self.pass_band is not None and not 0 <= self.pass_band[0] <= self.pass_band[1] <= 1:
            raise ValueError("pass_band must be [low, high] with 0 <= low <= high <= 1")
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError(f"min_score {self.min_score} is above max_score {self.max_score}")
        return self

    def most_requests(self, steps) -> int:
        count = next(step.candidates for step in steps if step.id == self.select)
        return {"judge": count, "pairwise": count * (count - 1), "verifier": 0}[self.by]

    def check(self, refs: References) -> None:
        super().check(refs)
        refs.field(self.select, "select")
        source = next(step for step in refs.earlier_steps() if step.id == self.select)
        if not isinstance(source, CandidatesStep):
            raise ValueError(f"{refs.where}.select: '{self.select}' is not a candidates step")
        for key, name in [*(("verifier", v) for v in self.verifier or []), *(("require", r) for r in self.require)]:
            refs.validator(name, key)
            fields = set(refs.validators[name].field_refs().values())
            if self.select not in fields:
                raise ValueError(f"{refs.where}.{key}: '{name}' does not read '{self.select}' "
                                 f"(it reads {', '.join(sorted(fields)) or 'every free-text field'}): "
                                 f"give it fields: [{self.select}] so it checks each candidate")
        extra = {"request", "rubric", "text", "a", "b", "low", "high"}
        refs.template(self.rubric, "rubric")
        refs.template(self.prompt, "prompt", extra)

    def own_validators(self) -> list[str]:
        return [*(self.verifier or []), *self.require]


async def select(runner, step: SelectStep, sample: Sample) -> None:
    candidates, excluded = await _admitted(runner, step, sample, sample.context[step.select])
    failures: list[str | None] = []
    if step.by == "verifier":
        scores, failures = await _verified(runner, step, sample, candidates)
    elif step.by == "pairwise":
        scores = await _pairwise(runner, step, sample, candidates)
    else:
        scores = await asyncio.gather(*(_grade(runner, step, sample, text) for text in candidates))
        ungraded = scores.count(None)
        if ungraded > MAX_UNUSABLE_SHARE * len(scores):
            raise StepFailed(f"select:{step.id}", f"judge unusable: {ungraded} of {len(scores)} grades without a score")
    graded = [k for k, score in enumerate(scores) if score is not None]  # an ungraded candidate is out
    best = max(graded, key=lambda k: (scores[k], -k))
    worst = min(graded, key=lambda k: (scores[k], k))
    margin = scores[best] - scores[worst]
    if candidates[best].strip() == candidates[worst].strip():
        margin = 0.0  # one text twice is no preference
    value = {"best": candidates[best], "worst": candidates[worst], "best_score": scores[best],
             "worst_score": scores[worst], "margin": round(margin, 6), "scores": scores,
             "best_index": best, "worst_index": worst,
             "pass_rate": round(sum(scores) / len(scores), 6) if step.by == "verifier" else None,
             **({"failures": failures} if failures else {}), **({"excluded": excluded} if excluded else {})}
    sample.set(step.id, value)
    sample.prompt_messages[step.id] = sample.prompt_messages.get(step.select, [])  # the pair's prompt
    outcome = _gate(step, value)
    sample.verdict(f"select:{step.id}", outcome)
    if not outcome.passed:
        raise StepFailed(f"select:{step.id}", outcome.detail)


def _gate(step: SelectStep, value: dict) -> Check:
    best, margin, rate = value["best_score"], value["margin"], value["pass_rate"]
    if step.by == "verifier" and best < 1:
        why = _most_common([failure for failure in value["failures"] if failure])
        return Check(False, f"none of the {len(value['scores'])} candidates passed {', '.join(step.verifier)}: {why}")
    if step.pass_band is not None and not step.pass_band[0] <= rate <= step.pass_band[1]:
        low, high = step.pass_band
        return Check(False, f"pass rate {rate:.2f} outside [{low:g}, {high:g}]: "
                            f"{'too hard' if rate < low else 'too easy'} to learn from")
    if step.min_score is not None and best < step.min_score:
        return Check(False, f"best score {best:g} below the minimum {step.min_score:g}")
    if step.max_score is not None and best > step.max_score:
        return Check(False, f"best score {best:g} above the maximum {step.max_score:g}: too easy")
    if step.min_margin is not None and margin < step.min_margin:
        return Check(False, f"margin {margin:g} below {step.min_margin:g}: no pair (a tie, or the same answer twice)")
    return Check(True, f"best {best:g}, worst {value['worst_score']:g}, margin {margin:g}")


def _request(step: SelectStep, sample: Sample) -> str:
    return sample.prompts.get(step.select, "")


async def _ask(runner, step: SelectStep, sample: Sample, prompt: str, purpose: str) -> str:
    view = Sample(context=sample.context, seed_id=sample.seed_id, sample_index=sample.sample_index,
                  conversation=[*opening(step, step.system or JUDGE_SYSTEM, sample), {"role": "user", "content": prompt}])
    try:
        text = await runner.ask(step, view, purpose)
    except StepFailed as exc:  # cut at max_tokens: the verdict often came first, and is read from what came
        text = exc.raw
    sample.turns.extend(view.turns)
    return text


async def _grade(runner, step: SelectStep, sample: Sample, candidate: str) -> float | None:
    low, high = step.scale
    rubric = render_or_fail(step.rubric, sample.context, step.id)
    context = {**sample.context, "request": _request(step, sample), "rubric": rubric, "text": candidate,
               "low": low, "high": high}
    text = await _ask(runner, step, sample, render_or_fail(step.prompt or GRADE_PROMPT, context, step.id), "judge")
    try:
        return judge_score(text, low, high)[0]
    except ParseError:
        return None


async def _pairwise(runner, step: SelectStep, sample: Sample, candidates: list[str]) -> list[float]:
    """Each candidate's share of wins over all comparisons it took part in, each pair judged in
    both orders: a judge that always prefers the first answer gives every candidate one half."""
    rubric = render_or_fail(step.rubric, sample.context, step.id)
    orders = [(i, j) for i in range(len(candidates)) for j in range(len(candidates)) if i != j]

    async def compare(first: int, second: int) -> tuple[int, int, str | None]:
        context = {**sample.context, "request": _request(step, sample), "rubric": rubric,
                   "a": candidates[first], "b": candidates[second]}
        text = await _ask(runner, step, sample, render_or_fail(step.prompt or COMPARE_PROMPT, context, step.id), "compare")
        found = _BETTER.findall(text) or _NAMED.findall(text)
        return first, second, found[-1].lower() if found else None

    verdicts = await asyncio.gather(*(compare(i, j) for i, j in orders))
    unusable = sum(verdict is None for _, _, verdict in verdicts)
    if unusable > MAX_UNUSABLE_SHARE * len(verdicts):
        raise StepFailed(f"select:{step.id}", f"judge unusable: {unusable} of {len(verdicts)} comparisons "
                                              f"without a 'Better: A, B or tie' verdict")
    wins = [0.0] * len(candidates)
    for first, second, verdict in verdicts:  # no verdict counts as a tie: it tells nothing
        if verdict == "a":
            wins[first] += 1
        elif verdict == "b":
            wins[second] += 1
        else:  # a tie, or no verdict
            wins[first] += 0.5
            wins[second] += 0.5
    comparisons = 2 * (len(candidates) - 1)
    return [round(w / comparisons, 6) for w in wins]


async def _first_failure(runner, names: list[str], step: SelectStep, sample: Sample, candidate: str) -> str | None:
    """The first of these validators a candidate fails, with its reason; None when it passes all."""
    inputs = Inputs({**sample.context, step.select: candidate}, sample.prompts)
    for name in names:
        result = await runner.validators[name].check(inputs, runner.record_id(sample))
        if not result.passed:
            return f"{name}: {result.detail}"
    return None


async def _admitted(runner, step: SelectStep, sample: Sample, candidates: list[str]) -> tuple[list[str], list[str]]:
    """The candidates that pass `require`, and why the others are out; none passing rejects."""
    if not step.require:
        return candidates, []
    failures = await asyncio.gather(*(_first_failure(runner, step.require, step, sample, c) for c in candidates))
    admitted = [candidate for candidate, failure in zip(candidates, failures) if failure is None]
    excluded = [failure for failure in failures if failure is not None]
    if not admitted:
        raise StepFailed(f"select:{step.id}", f"no candidate passed {', '.join(step.require)}: {_most_common(excluded)}")
    return admitted, excluded


def _most_common(reasons: list[str]) -> str:
    counts = collections.Counter(reasons).most_common(3)
    return "; ".join(f"{reason} ({count}x)" if count > 1 else reason for reason, count in counts)


async def _verified(runner, step: SelectStep, sample: Sample, candidates: list[str]) -> tuple[list[float], list[str | None]]:
    """1 for a candidate every verifier passes, else 0 and the first verifier's reason."""
    failures = await asyncio.gather(*(_first_failure(runner, step.verifier, step, sample, c) for c in candidates))
    return [0.0 if failure else 1.0 for failure in failures], list(failures)


KIND = StepKind("select", SelectStep, select, marker="select")
