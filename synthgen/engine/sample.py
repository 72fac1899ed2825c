"""One sample on its way through a workflow, and how a step says it failed."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from synthgen.engine.records import Turn, Verdict
from synthgen.engine.templates import TemplateError, render
from synthgen.engine.validators.base import Check


class StepFailed(Exception):
    def __init__(self, stage: str, reason: str, raw: str = ""):
        super().__init__(reason)
        self.stage, self.reason, self.raw = stage, reason, raw


@dataclass
class Sample:
    """What one sample has built so far; kept for the reject when a step fails."""

    context: dict[str, Any]
    seed_id: str = ""
    sample_index: int = 0
    fields: dict[str, str] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    conversation: list[dict[str, str]] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)  # the prompt each generate step sent
    # The whole conversation a generate or candidates step sent (system, examples, prompt): the
    # prompt of the pairs made from its answer.
    prompt_messages: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    checked: dict[str, tuple[str, Check]] = field(default_factory=dict)
    forked_at: set[int] = field(default_factory=set)
    failure: StepFailed | None = None
    # Columns of several records this sample becomes (one per pivotal-token pair), if a step says so.
    rows: list[dict[str, Any]] = field(default_factory=list)

    def set(self, name: str, value: Any) -> None:
        """A field: templates see the value itself, the shard column its text (JSON if structured)."""
        self.context[name] = value
        self.fields[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def fork(self, branch: int, branches: int, position: int) -> Sample:
        child = copy.deepcopy(self)
        child.sample_index = self.sample_index * branches + branch
        child.forked_at.add(position)
        return child

    def verdict(self, name: str, check: Check) -> None:
        self.verdicts[name] = Verdict(validator=name, passed=check.passed, detail=check.detail)


def render_or_fail(template: str, context: dict, stage: str) -> str:
    try:
        return render(template, context)
    except TemplateError as exc:
        raise StepFailed(stage, f"template: {exc}") from None

