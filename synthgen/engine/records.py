"""The record model: what a seed is, what one teacher call leaves behind, what lands in shards."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, Field

SeedKind = Literal["code", "text", "qa"]
# Where a shard column is narrower or richer than the Python type says (see synthgen/storage/layout.py).
Int32 = Annotated[int, "arrow:int32"]
EpochSeconds = Annotated[float, "arrow:timestamp_ms_utc"]


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:20]


class Seed(BaseModel):
    seed_id: str
    source: str
    kind: SeedKind
    text: str
    meta: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def create(cls, kind: SeedKind, text: str, source: str, meta: dict[str, str] | None = None) -> Seed:
        """A seed whose id is the hash of its content, so the same text is the same seed everywhere."""
        return cls(seed_id=content_hash(kind, text), source=source, kind=kind, text=text, meta=meta or {})


class Turn(BaseModel):
    """Lineage of one teacher call."""

    step: str
    purpose: str = "answer"  # answer | continuation | repair | revise | judge
    round: Int32 = 0  # revision round (0: before any revision)
    teacher: str
    model: str
    prompt_hash: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cache_hit: bool = False
    finish_reason: str = ""
    retries: Int32 = 0


class Verdict(BaseModel):
    validator: str
    passed: bool
    detail: str = ""


class ChatMessage(BaseModel):
    role: str
    content: str


class Record(BaseModel):
    """One accepted training sample. Its shard row has a column per workflow field in place of
    `fields`; the shard schema is derived from these models.

    `messages` is the SFT conversation (TRL conversational). A workflow with a `select` step also
    fills the TRL preference columns from its last one: `prompt` (`messages` up to the last
    assistant turn), `chosen`/`rejected` (one assistant message each: the best and worst candidate;
    empty when they tie) with their scores and margin, and `pass_rate` when a verifier scored.
    A `pivotal_tokens` step makes one record per pair: `prompt` is the query plus the answer's
    prefix (a trailing assistant message to continue), `chosen`/`rejected` the tokens, with
    P(success) before and after the pivotal token, its change and the samples it took.
    Shards carry these optional columns only for workflows whose steps fill them."""

    record_id: str
    seed_id: str
    sample_index: Int32 = 0
    workflow: str
    workflow_hash: str
    messages: list[ChatMessage] = Field(default_factory=list)
    prompt: list[ChatMessage] = Field(default_factory=list)
    chosen: list[ChatMessage] = Field(default_factory=list)
    rejected: list[ChatMessage] = Field(default_factory=list)
    score_chosen: float | None = None
    score_rejected: float | None = None
    margin: float | None = None
    pass_rate: float | None = None
    p_before: float | None = None
    p_after: float | None = None
    delta: float | None = None
    samples: int | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    turns: list[Turn] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    teacher_model: str = ""
    created_at: EpochSeconds = 0.0
    node: str = ""


# The optional columns, by the kind of record that fills them (see StepSpec.record_columns).
PAIR_COLUMNS = ("prompt", "chosen", "rejected", "score_chosen", "score_rejected", "margin", "pass_rate")
PIVOT_COLUMNS = ("p_before", "p_after", "delta", "samples")
OPTIONAL_COLUMNS = PAIR_COLUMNS + PIVOT_COLUMNS


class Reject(Record):
    """A sample that did not make it, with the stage that stopped it and why."""

    stage: str
    reason: str
    raw: str = ""


class SeedResult(BaseModel):
    """Everything one seed produced. `settled` is False when the seed must be tried again
    (the teacher was unreachable), so it is never committed and a rerun picks it up."""

    seed_id: str
    settled: bool = True
    records: list[Record] = Field(default_factory=list)
    rejects: list[Reject] = Field(default_factory=list)
    error: str = ""

    def counts(self) -> dict[str, int]:
        """What progress shows for this seed: requests and tokens paid for (cache hits are free)."""
        paid = [t for item in (*self.records, *self.rejects) for t in item.turns if not t.cache_hit]
        return {
            "done": 1,
            "records": len(self.records),
            "rejects": len(self.rejects),
            "unsettled": 0 if self.settled else 1,
            "requests": len(paid),
            "tokens_out": sum(t.tokens_out for t in paid),
        }
