"""The step runner: one seed through a workflow's steps to records or rejects.

A seed starts as one sample; a step with `n > 1` forks every sample reaching it into n that go
on independently (sample indexes stay distinct and deterministic). Every way a sample can fail
inside the engine ends as a `Reject` with the stage and reason, except an unreachable teacher,
which leaves the whole seed unsettled so that the next run tries it again."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from synthgen.config.base import SEED_VARIABLE
from synthgen.config.workflow import WorkflowBase
from synthgen.engine.cache import ResponseCache
from synthgen.engine.continuation import Continuer
from synthgen.engine.records import ChatMessage, Record, Reject, Seed, SeedResult, content_hash
from synthgen.engine.registry import build_validators, step_kind
from synthgen.engine.sample import Sample, StepFailed, render_or_fail
from synthgen.engine.teacher import TeacherClient, TeacherRefused, TeacherUnavailable
from synthgen.engine.validators.base import Check, Inputs, Services, Validator

CONTINUE_PROMPT = "Continue exactly where you stopped. Do not repeat anything you already wrote."


class WorkflowRunner:
    def __init__(
        self,
        workflow: WorkflowBase,
        teachers: dict[str, TeacherClient],
        node: str = "",
        validators: dict[str, Validator] | None = None,
    ):
        self.workflow = workflow
        self.teachers = teachers
        self.validators = validators or {}
        self.node = node
        self.workflow_hash = workflow.workflow_hash
        self._conditions_in_use = {name for step in workflow.steps for name in step.conditions()}
        # The final gate: every validator but those a step runs on something else (candidates).
        self._final_gate = [name for name in self.validators
                            if name not in {own for step in workflow.steps for own in step.own_validators()}]
        selects = [step.id for step in workflow.steps if step.makes_pairs]
        self._pair_source = selects[-1] if selects else None
        self._continuers: dict[str, Continuer] = {}
        # Samples that have been through each step (passed or failed): live progress.
        self.steps_done: collections.Counter[str] = collections.Counter()

    async def run(self, seed: Seed) -> SeedResult:
        try:
            samples = await self._walk(Sample(context={SEED_VARIABLE: seed.model_dump()}, seed_id=seed.seed_id), 0)
        except TeacherUnavailable as exc:
            return SeedResult(seed_id=seed.seed_id, settled=False, error=str(exc))
        result = SeedResult(seed_id=seed.seed_id)
        for sample in sorted(samples, key=lambda s: s.sample_index):
            if sample.failure is None:
                try:
                    messages = [ChatMessage(role=m.role, content=render_or_fail(m.content, sample.context, "messages"))
                                for m in self.workflow.messages]
                except StepFailed as exc:
                    sample.failure = exc
            if sample.failure is not None:
                failure = sample.failure
                result.rejects.append(Reject(**self.base_fields(seed, sample), stage=failure.stage,
                                             reason=failure.reason, raw=failure.raw))
            elif sample.rows:
                result.records.extend(self._row_records(seed, sample, messages))
            else:
                result.records.append(Record(**self.base_fields(seed, sample), messages=messages,
                                             **self._pair(sample, messages)))
        return result

    def _row_records(self, seed: Seed, sample: Sample, messages: list[ChatMessage]) -> list[Record]:
        """One record per row a step made (pivotal token pairs). The sample's teacher calls are
        paid once: its lineage (`turns`) is on the first of them."""
        records = []
        for number, row in enumerate(sample.rows):
            fields = self.base_fields(seed, sample)
            fields["record_id"] = content_hash(fields["record_id"], f"row {number}")
            if number:
                fields["turns"] = []
            records.append(Record(**fields, messages=messages, **row))
        return records

    async def close(self) -> None:
        for teacher in self.teachers.values():
            await teacher.close()

    async def _walk(self, sample: Sample, start: int) -> list[Sample]:
        steps = self.workflow.steps
        for position in range(start, len(steps)):
            step = steps[position]
            fan_out = step.fan_out
            if fan_out > 1 and position not in sample.forked_at:
                branches = [sample.fork(k, fan_out, position) for k in range(fan_out)]
                nested = await asyncio.gather(*(self._walk(branch, position) for branch in branches))
                return [leaf for group in nested for leaf in group]
            try:
                await step_kind(step).run(self, step, sample)
            except StepFailed as exc:
                sample.failure = exc
                return [sample]
            finally:
                self.steps_done[step.id] += 1
        try:
            for name in self._final_gate:  # every validator, on the final fields
                await self.require(name, sample)
        except StepFailed as exc:
            sample.failure = exc
        return [sample]

    # -- services the steps use ----------------------------------------------------------------
    async def check(self, name: str, sample: Sample) -> Check:
        """Run a validator unless it already judged these exact field values."""
        validator = self.validators[name]
        names = validator.fields or sorted(sample.fields)  # no fields named: it reads them all
        fingerprint = content_hash(*(f"{f}={sample.fields.get(f, '')}" for f in names))
        previous = sample.checked.get(name)
        if previous is not None and previous[0] == fingerprint:
            return previous[1]
        try:
            result = await validator.check(Inputs(sample.context, sample.prompts), self.record_id(sample))
        except Exception as exc:  # noqa: BLE001 - a broken validator rejects with its reason, never the run
            raise StepFailed(f"validate:{name}", f"validator error: {type(exc).__name__}: {exc}") from None
        sample.checked[name] = (fingerprint, result)
        sample.verdict(name, result)
        return result

    async def condition(self, name: str, sample: Sample, round_number: int) -> Check:
        """A revise loop's `until`: a condition step (a judge) checked again, or a validator."""
        step = self.workflow.step(name)
        again = step_kind(step).condition if step is not None else None
        if again is not None:
            return await again(self, step, sample, round_number)
        return await self.check(name, sample)

    def continuer(self, teacher: str) -> Continuer:
        """The teacher's way of continuing a prefix, found out once per runner."""
        if teacher not in self._continuers:
            self._continuers[teacher] = Continuer(self.teachers[teacher])
        return self._continuers[teacher]

    def is_condition_of_later_step(self, step_id: str) -> bool:
        """A later step acts on this condition step's verdict (so it does not reject by itself)."""
        return step_id in self._conditions_in_use

    async def require(self, name: str, sample: Sample) -> None:
        result = await self.check(name, sample)
        if not result.passed:
            raise StepFailed(f"validate:{name}", f"{name}: {result.detail}", result.evidence)

    async def ask(
        self, step: Any, sample: Sample, purpose: str, *, stop: list[str] | None = None, on_length: str = "reject",
        max_continuations: int = 2, response_format: dict | None = None, round_number: int = 0, variant: int = 0,
    ) -> str:
        """One answer to the sample's conversation, continued while it is cut at max_tokens if
        allowed; the conversation keeps the whole answer as one assistant message."""
        teacher = self.teachers[step.teacher]
        base = len(sample.conversation)
        pieces: list[str] = []
        for continuation in range(max_continuations + 1):
            try:
                completion = await teacher.chat(
                    sample.conversation,
                    temperature=step.temperature,
                    max_tokens=step.max_tokens,
                    stop=stop,
                    response_format=response_format,
                    sample_index=sample.sample_index,
                    variant=variant,
                )
            except TeacherRefused as exc:
                raise StepFailed(step.id, f"teacher refused: {exc}", "".join(pieces)) from None
            kind = "continuation" if continuation else purpose
            sample.turns.append(completion.turn(step.id, kind, teacher.name, round_number))
            pieces.append(completion.text)
            if completion.finish_reason != "length":
                break
            if on_length == "reject":
                raise StepFailed(step.id, "answer truncated (finish_reason=length); raise max_tokens", "".join(pieces))
            sample.conversation.append({"role": "assistant", "content": completion.text})
            sample.conversation.append({"role": "user", "content": CONTINUE_PROMPT})
        else:
            raise StepFailed(step.id, f"answer still truncated after {max_continuations} continuations", "".join(pieces))
        text = "".join(pieces)
        del sample.conversation[base:]
        sample.conversation.append({"role": "assistant", "content": text})
        return text

    def _pair(self, sample: Sample, messages: list[ChatMessage]) -> dict:
        """The TRL preference columns from the last select step; a tie leaves chosen/rejected empty.
        The prompt is the training conversation's (`messages` up to its last assistant turn), so
        the SFT and DPO views agree; without one, the messages the candidates were asked with."""
        if self._pair_source is None:
            return {}
        chosen = sample.context[self._pair_source]
        columns = {"score_chosen": chosen["best_score"], "score_rejected": chosen["worst_score"],
                   "margin": chosen["margin"], "pass_rate": chosen["pass_rate"]}
        if messages and messages[-1].role == "assistant":
            columns["prompt"] = messages[:-1]
        else:
            columns["prompt"] = [ChatMessage(**m) for m in sample.prompt_messages.get(self._pair_source, [])]
        if chosen["margin"] > 0:
            columns["chosen"] = [ChatMessage(role="assistant", content=chosen["best"])]
            columns["rejected"] = [ChatMessage(role="assistant", content=chosen["worst"])]
        return columns

    def record_id(self, sample: Sample) -> str:
        return content_hash(self.workflow_hash, sample.seed_id, str(sample.sample_index))

    def base_fields(self, seed: Seed, sample: Sample | None = None) -> dict:
        """The identity and lineage every record or reject of this seed carries."""
        sample = sample or Sample(context={}, seed_id=seed.seed_id)
        models = sorted({turn.model for turn in sample.turns})
        return {
            "record_id": self.record_id(sample),
            "seed_id": seed.seed_id,
            "sample_index": sample.sample_index,
            "workflow": self.workflow.name,
            "workflow_hash": self.workflow_hash,
            "fields": dict(sample.fields),
            "turns": list(sample.turns),
            "verdicts": list(sample.verdicts.values()),
            "teacher_model": ",".join(models),
            "created_at": time.time(),
            "node": self.node,
        }


async def run_seeds(workflow: WorkflowBase, seeds: list[Seed], cache: ResponseCache | None = None,
                    services: Services | None = None) -> list[SeedResult]:
    """Seeds through a workflow in this process, concurrently, without Ray (tests, benchmarks)."""
    teachers = {name: TeacherClient(name, config, cache, None) for name, config in workflow.teachers.items()}
    runner = WorkflowRunner(workflow, teachers, validators=build_validators(workflow, services or Services()))
    try:
        return await asyncio.gather(*(runner.run(seed) for seed in seeds))
    finally:
        await runner.close()
