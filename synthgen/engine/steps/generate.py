"""`generate`: one chat turn against a teacher; its (parsed) answer becomes the field `id`.
A step without any other kind's marker key is a generate step."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from synthgen.config.base import Template
from synthgen.config.kinds import AskingStep, References
from synthgen.engine.sample import Sample, render_or_fail
from synthgen.engine.steps.base import StepKind, answer, opening


class GenerateStep(AskingStep):
    """One chat turn against a teacher; its (parsed) answer becomes the field named `id`."""

    prompt: Template
    parse: Literal["text", "code_block", "json"] = "text"
    conversation: Literal["new", "continue"] = "new"
    n: int = Field(1, ge=1, le=16, description="samples per incoming sample: each continues the workflow on its own")
    stop: list[str] | None = Field(None, max_length=4, description="stop sequences, e.g. ['\\n\\n'] for one paragraph")
    on_length: Literal["reject", "continue"] = Field(
        "reject", description="an answer cut at max_tokens: reject the seed, or ask the teacher to continue"
    )
    max_continuations: int = Field(2, ge=1, le=10)
    json_schema: dict[str, Any] | None = Field(None, description="with parse: json, the answer must match it")

    @model_validator(mode="after")
    def _schema_needs_json(self) -> GenerateStep:
        if self.json_schema is not None and self.parse != "json":
            raise ValueError("json_schema needs parse: json")
        return self

    def check(self, refs: References) -> None:
        super().check(refs)
        if self.conversation == "continue" and not any(isinstance(s, GenerateStep) for s in refs.earlier_steps()):
            raise ValueError(f"{refs.where}.conversation: no earlier generate step has a conversation to continue")
        refs.template(self.prompt, "prompt")

    @property
    def fan_out(self) -> int:
        return self.n

    def answer_format(self) -> str:
        return self.parse

    def most_requests(self, steps) -> int:
        # One answer, its continuations when cut at max_tokens, one repair request for JSON.
        return 1 + (self.max_continuations if self.on_length == "continue" else 0) + (self.parse == "json")

    def writes_text(self) -> bool:
        return self.parse == "text"


async def generate(runner, step: GenerateStep, sample: Sample) -> None:
    prompt = render_or_fail(step.prompt, sample.context, step.id)
    if step.conversation == "new":
        sample.conversation = opening(step, step.system, sample)
    sample.conversation.append({"role": "user", "content": prompt})
    sample.prompts[step.id] = prompt
    sample.prompt_messages[step.id] = list(sample.conversation)
    options = {"stop": step.stop, "on_length": step.on_length, "max_continuations": step.max_continuations}
    sample.set(step.id, await answer(runner, step, sample, step.parse, "answer", options))


KIND = StepKind("generate", GenerateStep, generate)
