"""`synthgen run --dry-run`: what a run will ask of its teachers — requests, input and output
tokens, cost — before any is called.

Learned from the run directory when it holds committed seeds (a `--limit 5` look, an interrupted
run): per step and teacher, what an observed seed cost — every call counted, cache hits too, for
the seeds still to run are new — times the seeds still to run, input tokens scaled by how long
their texts are against the observed seeds'. Without any: upper bounds from the workflow alone —
the first step's prompts rendered for a sample of seeds and counted with the embedded teacher's
tokenizer, every later prompt bounded by the answers before it, every answer by max_tokens,
every loop by its bound; a step with no bound (pivotal tokens) is named. Fields of earlier steps
render empty in those prompts: their size is bounded apart."""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field

from synthgen.config.base import SEED_VARIABLE
from synthgen.config.kinds import AskingStep
from synthgen.config.workflow import WorkflowBase
from synthgen.engine.records import Seed
from synthgen.engine.sample import Sample, StepFailed
from synthgen.engine.steps.base import opening
from synthgen.engine.templates import TemplateError, render
from synthgen.storage.layout import committed_seed_ids, is_run
from synthgen.storage.location import Location
from synthgen.storage.query import TURNS, connect

log = logging.getLogger(__name__)

RENDERED_SEEDS = 50  # seeds whose first prompts are rendered for the bound


@dataclass
class StepCost:
    step: str
    teacher: str
    requests: float  # per seed
    tokens_in: float
    tokens_out: float
    bound: bool  # an upper bound, not an estimate
    unknown: bool = False  # no bound either


@dataclass
class Estimate:
    seeds: int
    to_run: int
    observed_seeds: int
    steps: list[StepCost] = field(default_factory=list)

    def totals(self) -> dict[str, dict[str, float]]:
        """Per teacher: requests, tokens in and out for the seeds still to run."""
        out: dict[str, dict[str, float]] = {}
        for cost in self.steps:
            row = out.setdefault(cost.teacher, {"requests": 0.0, "tokens_in": 0.0, "tokens_out": 0.0})
            for key in row:
                row[key] += getattr(cost, key) * self.to_run
        return out


def estimate(workflow: WorkflowBase, seeds: list[Seed]) -> Estimate:
    out = Location.of(workflow.output.dir or "out")
    committed = {i for ids in committed_seed_ids(out) for i in ids} if is_run(out) else set()
    remaining = [seed for seed in seeds if seed.seed_id not in committed]
    result = Estimate(seeds=len(seeds), to_run=len(remaining), observed_seeds=0)
    if committed:
        result.observed_seeds, result.steps = _observed(out, seeds, remaining, committed)
        order = {name: index for index, name in enumerate(workflow.field_names)}
        result.steps.sort(key=lambda cost: (order.get(cost.step, len(order)), cost.teacher))
    if not result.steps:
        result.steps = _bounds(workflow, remaining or seeds)
    return result


def _observed(out: Location, seeds: list[Seed], remaining: list[Seed], committed: set[str]) -> tuple[int, list[StepCost]]:
    con = connect(out)
    rows = con.execute(f"SELECT step, teacher, count(*), sum(tokens_in), sum(tokens_out) FROM ({TURNS}) GROUP BY ALL").fetchall()
    observed = [seed for seed in seeds if seed.seed_id in committed]
    if not observed or not rows:
        return 0, []
    # Prompts carry the seed text (and answers that grow with it): scale input tokens by its length.
    scale = statistics.fmean(len(s.text) for s in remaining) / max(1.0, statistics.fmean(len(s.text) for s in observed)) \
        if remaining else 1.0
    count = len(observed)
    return count, [StepCost(step, teacher, requests / count, tokens_in * scale / count, tokens_out / count, bound=False)
                   for step, teacher, requests, tokens_in, tokens_out in rows]


def _bounds(workflow: WorkflowBase, seeds: list[Seed]) -> list[StepCost]:
    from synthgen.engine.tokens import counter

    count, _ = counter("embedded")
    sample = seeds[:: max(1, len(seeds) // RENDERED_SEEDS)][:RENDERED_SEEDS]
    costs, fan_out, answers_before = [], 1, 0
    for step in workflow.steps:
        most = step.most_requests(workflow.steps)
        if isinstance(step, AskingStep):
            teacher = workflow.teachers[step.teacher]
            max_out = step.max_tokens or teacher.max_tokens
            prompt = statistics.fmean(count(_prompts(step, sample))) if sample else 0.0
            if most is None:
                costs.append(StepCost(step.id, step.teacher, 0, 0, 0, bound=True, unknown=True))
            else:
                requests = fan_out * most
                costs.append(StepCost(step.id, step.teacher, requests, requests * (prompt + answers_before),
                                      requests * max_out, bound=True))
            answers_before += max_out
        fan_out *= step.fan_out
    return costs


def _prompts(step: AskingStep, seeds: list[Seed]) -> list[str]:
    """The step's opening and prompt for each seed."""
    texts = []
    template = getattr(step, "prompt", None) or getattr(step, "rubric", None) or ""
    for seed in seeds:
        context = {SEED_VARIABLE: seed.model_dump()}
        try:
            parts = [m["content"] for m in opening(step, step.system, Sample(context=context, seed_id=seed.seed_id))]
            parts.append(render(template, context))
        except (StepFailed, TemplateError):  # a prompt that needs earlier answers: its own text
            parts = [template]
        texts.append("\n".join(parts))
    return texts


def format_estimate(result: Estimate, workflow: WorkflowBase) -> str:
    lines = [f"dry run of {workflow.name}: {result.seeds} seeds, {result.seeds - result.to_run} already committed, "
             f"{result.to_run} to run; no teacher was called"]
    if result.observed_seeds:
        lines.append(f"learned from the {result.observed_seeds} seeds committed in {workflow.output.dir} "
                     "(every call they made, cache hits too)")
    else:
        lines.append("upper bounds from the workflow alone (every answer max_tokens long, every loop at its bound); "
                     "run with --limit 5 first, then --dry-run again, for an estimate")
    lines.append(f"{'step':<16}{'teacher':<12}{'requests/seed':>14}{'tokens in/seed':>16}{'tokens out/seed':>17}")
    for cost in result.steps:
        if cost.unknown:
            lines.append(f"{cost.step:<16}{cost.teacher:<12}{'no bound before a run: try --limit 2 first':>47}")
        else:
            lines.append(f"{cost.step:<16}{cost.teacher:<12}{cost.requests:>14.2f}{cost.tokens_in:>16,.0f}"
                         f"{cost.tokens_out:>17,.0f}")
    for name, total in result.totals().items():
        usd = workflow.teachers[name].cost_usd(total["tokens_in"], total["tokens_out"]) if name in workflow.teachers else None
        cost = f"${usd:,.2f}" if usd is not None else "no price_per_million_tokens set"
        lines.append(f"teacher {name}: {total['requests']:,.0f} requests, {total['tokens_in']:,.0f} input tokens, "
                     f"{total['tokens_out']:,.0f} output tokens; cost {cost}")
    if any(c.unknown for c in result.steps):
        lines.append("totals leave out the steps without a bound")
    return "\n".join(lines)
