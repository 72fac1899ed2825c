"""The step runner: one seed through a workflow's steps to records or rejects.

Every way a seed can fail inside the engine ends as a `Reject` with the stage and reason, except
an unreachable teacher, which leaves the seed unsettled so that the next run tries it again."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from synthgen.config import SEED_VARIABLE, GenerateStep, Workflow
from synthgen.engine.parsing import ParseError, parse
from synthgen.engine.teacher import Completion, TeacherClient, TeacherRefused, TeacherUnavailable
from synthgen.engine.templates import TemplateError, render
from synthgen.records import ChatMessage, Record, Reject, Seed, SeedResult, Turn, content_hash


CONTINUE_PROMPT = "Continue exactly where you stopped. Do not repeat anything you already wrote."
REPAIR_PROMPT = (
    "Your answer could not be used: {error}. Reply again with only the corrected JSON, nothing else."
)


class StepFailed(Exception):
    def __init__(self, stage: str, reason: str, raw: str = ""):
        super().__init__(reason)
        self.stage, self.reason, self.raw = stage, reason, raw


@dataclass
class _Progress:
    """What one sample has built so far; kept for the reject when a step fails."""

    fields: dict[str, str] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    conversation: list[dict[str, str]] = field(default_factory=list)


class WorkflowRunner:
    def __init__(self, workflow: Workflow, teachers: dict[str, TeacherClient], node: str = ""):
        self.workflow = workflow
        self.teachers = teachers
        self.node = node
        self.workflow_hash = workflow.workflow_hash

    async def run(self, seed: Seed) -> SeedResult:
        state = _Progress()
        context: dict = {SEED_VARIABLE: seed.model_dump()}
        try:
            for step in self.workflow.steps:
                context[step.id] = state.fields[step.id] = await self._generate(step, context, state)
            messages = [
                ChatMessage(role=m.role, content=_render(m.content, context, "messages")) for m in self.workflow.messages
            ]
        except TeacherUnavailable as exc:
            return SeedResult(seed_id=seed.seed_id, settled=False, error=str(exc))
        except StepFailed as exc:
            reject = Reject(**self.base_fields(seed, state), stage=exc.stage, reason=exc.reason, raw=exc.raw)
            return SeedResult(seed_id=seed.seed_id, rejects=[reject])
        record = Record(**self.base_fields(seed, state), messages=messages)
        return SeedResult(seed_id=seed.seed_id, records=[record])

    def base_fields(self, seed: Seed, state: _Progress | None = None, sample_index: int = 0) -> dict:
        """The identity and lineage every record or reject of this seed carries."""
        state = state or _Progress()
        models = sorted({turn.model for turn in state.turns})
        return {
            "record_id": content_hash(self.workflow_hash, seed.seed_id, str(sample_index)),
            "seed_id": seed.seed_id,
            "sample_index": sample_index,
            "workflow": self.workflow.name,
            "workflow_hash": self.workflow_hash,
            "fields": dict(state.fields),
            "turns": list(state.turns),
            "teacher_model": ",".join(models),
            "created_at": time.time(),
            "node": self.node,
        }

    async def _generate(self, step: GenerateStep, context: dict, state: _Progress) -> str:
        prompt = _render(step.prompt, context, step.id)
        if step.conversation == "new":
            state.conversation = []
            if step.system:
                state.conversation.append({"role": "system", "content": _render(step.system, context, step.id)})
            for example in step.examples:
                state.conversation.append({"role": "user", "content": _render(example.user, context, step.id)})
                state.conversation.append({"role": "assistant", "content": _render(example.assistant, context, step.id)})
        state.conversation.append({"role": "user", "content": prompt})
        text = await self._ask(step, state, "answer")
        try:
            return parse(step.parse, text, step.json_schema)
        except ParseError as exc:
            if step.parse != "json":
                raise StepFailed(step.id, f"parse ({step.parse}): {exc}", text) from None
            first_error = exc
        # One repair request that shows the teacher its own parse error.
        state.conversation.append({"role": "user", "content": REPAIR_PROMPT.format(error=first_error)})
        text = await self._ask(step, state, "repair")
        try:
            return parse(step.parse, text, step.json_schema)
        except ParseError as exc:
            raise StepFailed(step.id, f"parse (json): {exc} (after one repair request)", text) from None

    async def _ask(self, step: GenerateStep, state: _Progress, purpose: str) -> str:
        """One answer, continued while it is cut at max_tokens if the step allows; the
        conversation keeps the whole answer as one assistant message."""
        teacher = self.teachers[step.teacher]
        base = len(state.conversation)
        pieces: list[str] = []
        for continuation in range(step.max_continuations + 1):
            try:
                completion = await teacher.chat(
                    state.conversation,
                    temperature=step.temperature,
                    max_tokens=step.max_tokens,
                    stop=step.stop,
                    response_format=self._response_format(step),
                )
            except TeacherRefused as exc:
                raise StepFailed(step.id, f"teacher refused: {exc}", "".join(pieces)) from None
            state.turns.append(_turn(step.id, "continuation" if continuation else purpose, teacher.name, completion))
            pieces.append(completion.text)
            if completion.finish_reason != "length":
                break
            if step.on_length == "reject":
                raise StepFailed(step.id, "answer truncated (finish_reason=length); raise max_tokens", "".join(pieces))
            state.conversation.append({"role": "assistant", "content": completion.text})
            state.conversation.append({"role": "user", "content": CONTINUE_PROMPT})
        else:
            raise StepFailed(
                step.id, f"answer still truncated after {step.max_continuations} continuations", "".join(pieces)
            )
        text = "".join(pieces)
        del state.conversation[base:]
        state.conversation.append({"role": "assistant", "content": text})
        return text

    def _response_format(self, step: GenerateStep) -> dict | None:
        if step.parse != "json" or not self.teachers[step.teacher].config.structured_output:
            return None
        if step.json_schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema", "json_schema": {"name": step.id, "schema": step.json_schema}}


def _turn(step: str, purpose: str, teacher: str, completion: Completion) -> Turn:
    return Turn(
        step=step,
        purpose=purpose,
        teacher=teacher,
        model=completion.model,
        prompt_hash=completion.prompt_hash,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        latency_s=round(completion.latency_s, 4),
        cache_hit=completion.cache_hit,
        finish_reason=completion.finish_reason,
        retries=completion.retries,
    )


def _render(template: str, context: dict, stage: str) -> str:
    try:
        return render(template, context)
    except TemplateError as exc:
        raise StepFailed(stage, f"template: {exc}") from None
