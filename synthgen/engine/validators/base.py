"""What a validator kind declares (`ValidatorKind`), what a built validator is (an async check
over a sample's fields), and the services a host lends validators."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthgen.config.base import SEED_VARIABLE
from synthgen.config.kinds import ValidatorSpec


@dataclass(frozen=True)
class Check:
    passed: bool
    detail: str = ""
    # What a revise prompt shows the teacher: failing tests and tracebacks, a critique, ...
    evidence: str = ""
    # False when rewriting the checked answer cannot help (the tests themselves are broken).
    fixable: bool = True


@dataclass(frozen=True)
class Inputs:
    """What a validator sees of a sample: its fields (the seed under `seed`, then every step's
    value in the order the steps made them) and the prompt each generate step sent."""

    fields: dict[str, Any]
    prompts: dict[str, str] = field(default_factory=dict)


class Validator(Protocol):
    name: str
    # The fields the verdict depends on: an unchanged set of values is not checked twice.
    fields: tuple[str, ...]

    async def check(self, inputs: Inputs, record_id: str) -> Check: ...


@dataclass
class Services:
    """What the host (a worker, a test) lends validators: the sandbox pool (opened on first
    need), and each validator's run-wide shared state by validator name, as its shards: one
    in-process object here, Ray actors shared by all workers in a run. A shard is called as
    `await shard.method(...)` either way."""

    sandbox: Callable[[], Any] | None = None
    shared: Callable[[str], list[Any]] | None = None
    # The fields a teacher wrote as free text (what the text quality gates check by default).
    text_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidatorKind:
    name: str
    spec: type[ValidatorSpec]
    build: Callable[[str, Any, Services], Validator]
    # Once per run, before any worker starts (fail fast, build indexes): (name, spec, workflow);
    # raises UserError when the validator cannot work here.
    prepare: Callable[[str, Any, Any], None] | None = None
    # Run-wide state, one per validator name, in shards: made from (spec, shard, shards), with
    # plain methods; `absorb(record_ids, fields)` (if it has one) is given every committed
    # record on resume, and keeps what belongs to its shard.
    shared: Callable[[Any, int, int], Any] | None = None


class InProcess:
    """Shared state living in this process, called with `await` like one in a Ray actor."""

    def __init__(self, state: Any):
        self._state = state

    def __getattr__(self, method: str) -> Callable[..., Any]:
        function = getattr(self._state, method)

        async def call(*args: Any) -> Any:
            return function(*args)

        return call


class TextGate:
    """A validator that judges each checked free-text field on its own: a subclass says what is
    wrong with one (`problem`), or overrides `check` when it needs the whole sample. The spec's
    `fields`, else every field a teacher wrote as free text, are checked."""

    passed = "ok"

    def __init__(self, name: str, spec: Any, services: Services):
        self.name, self.spec = name, spec
        self.fields = tuple(spec.fields or services.text_fields)

    async def check(self, inputs: Inputs, record_id: str = "") -> Check:
        for name, text in named_texts(inputs.fields, self.fields).items():
            problem = self.problem(name, text)
            if problem is not None:
                return problem
        return Check(True, self.passed)

    def problem(self, name: str, text: str) -> Check | None:
        raise NotImplementedError


def named_texts(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """These fields (and no others) as text, those the sample has."""
    texts = field_texts(fields, None)
    return {name: texts[name] for name in names if name in texts}


def field_texts(fields: dict[str, Any], names: list[str] | None) -> dict[str, str]:
    """The fields a validator reads as text (structured ones as JSON); the seed is not the sample's."""
    chosen = names or [name for name in fields if name != SEED_VARIABLE]
    return {name: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
            for name in chosen if (value := fields.get(name)) is not None}
