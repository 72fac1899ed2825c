"""The workflow YAML schema, apart from the step and validator kinds: seeds, teachers, sandbox,
the record's chat `messages`, output and runtime. `workflow_model` assembles the whole schema
from the kinds' specs (the engine's registry calls it), so a kind is added without editing here.

Relative paths are resolved against the YAML file; `${VAR}` / `${VAR:-default}` come from the
environment."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, create_model, field_validator, model_validator

from synthgen.config.base import EMBEDDED, SANDBOX_BACKENDS, SEED_VARIABLE, LocalPath, StoragePath, Strict, check_template, run_directory
from synthgen.config.decontamination import Decontamination
from synthgen.config.kinds import References, StepSpec, ValidatorSpec, check_validator_fields
from synthgen.config.yaml_source import load_config

BATCH_IN_FLIGHT = 5_000
_GENERATION_KNOBS = {"model", "temperature", "top_p", "frequency_penalty", "max_tokens", "seed", "structured_output"}


class SeedSource(Strict):
    """Where seeds come from and how to cut them."""

    path: LocalPath
    kind: Literal["code", "text", "qa"] | None = None
    format: Literal["auto", "jsonl", "parquet", "python", "text"] = "auto"
    text_field: str = "text"
    question_field: str = "question"
    answer_field: str = "answer"
    id_field: str | None = None
    meta_fields: list[str] = Field(default_factory=list)
    chunk_chars: int = Field(1200, ge=100, description="target size of a text chunk")
    min_chars: int = Field(40, ge=1, description="shorter chunks are not seeds")
    limit: int | None = Field(None, ge=1)
    near_dedup: float | None = Field(None, gt=0, le=1, description="drop seeds this similar (MinHash) to an earlier one")
    decontaminate: Decontamination | None = Field(None, description="drop seeds that leak these benchmarks")
    curate: LocalPath | None = Field(None, description="a CURATE.yaml: the seeds are curated (filtered, scored, tagged) first")


class Price(Strict):
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class BatchOptions(Strict):
    """How requests are gathered into provider batches (teacher.mode: batch)."""

    collect_s: float = Field(2.0, gt=0, description="a batch is sent once no request joined it for this long")
    max_requests: int = Field(50_000, ge=1, le=50_000, description="most requests in one batch (OpenAI: 50,000)")
    poll_s: float = Field(30.0, gt=0, description="how often a batch in progress is looked at")
    price_factor: float = Field(0.5, ge=0, description="batch price as a share of price_per_million_tokens")


class Teacher(Strict):
    """One OpenAI-compatible endpoint. The API key is read from `api_key_env`, never from YAML."""

    base_url: str = EMBEDDED
    model: str = "smollm2-135m-instruct"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.2, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="discourages repeating tokens (small models loop)")
    max_tokens: int = Field(512, ge=1)
    seed: int | None = 0
    max_in_flight: int = Field(32, ge=1, description="requests in flight per worker")
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles per attempt, with jitter")
    max_backoff_s: float = Field(30.0, gt=0)
    requests_per_minute: float | None = Field(None, gt=0, description="cluster-wide cap (all workers together)")
    tokens_per_minute: float | None = Field(None, gt=0, description="cluster-wide cap on prompt + completion tokens")
    structured_output: bool = Field(False, description="the endpoint supports response_format json_schema")
    transport: Literal["direct", "openai"] = Field(
        "direct",
        description="direct: the openai client builds the request once, synthgen replays it per call over aiohttp "
        "(a fifth of the CPU); openai: every call through AsyncOpenAI (auth that changes per request)",
    )
    down_after_s: float = Field(300.0, gt=0, description="stop the run when no seed got through for this long")
    continuation: Literal["auto", "chat_prefill", "completions"] = Field(
        "auto",
        description="how an answer is continued from a prefix (pivotal token search): chat_prefill sends the prefix "
        "as a final assistant message (vLLM's continue_final_message, llama.cpp's prefill); completions sends the "
        "chat-templated prompt to /v1/completions; auto asks the endpoint which it supports")
    chat_template: Literal["endpoint", "chatml"] = Field(
        "endpoint", description="for continuation: completions, who applies the chat template: the server "
        "(llama.cpp's /apply-template) or synthgen (ChatML)")
    tokenizer: str = Field(
        "auto", description="where prefixes are cut: endpoint (the server's /tokenize), embedded or hf:NAME "
        "(a local tokenizer), auto (the endpoint's when it serves one, else embedded)")
    price_per_million_tokens: Price | None = None
    mode: Literal["online", "batch"] = Field(
        "online", description="online: one HTTP request per answer; batch: the provider's Batch API (/v1/files + "
        "/v1/batches: cheaper, answers within hours; max_in_flight is then the requests a worker gathers)")
    batch: BatchOptions = Field(default_factory=BatchOptions)

    @model_validator(mode="after")
    def _gather_more_in_batch_mode(self) -> Teacher:
        """A batch answers in hours: a worker should gather thousands of requests, not dozens."""
        if self.mode == "batch" and "max_in_flight" not in self.model_fields_set:
            self.max_in_flight = BATCH_IN_FLIGHT
        return self

    def cost_usd(self, tokens_in: float, tokens_out: float) -> float | None:
        """What these tokens cost, in this mode, where a price is configured."""
        price = self.price_per_million_tokens
        if price is None:
            return None
        factor = self.batch.price_factor if self.mode == "batch" else 1.0
        return (tokens_in * price.input + tokens_out * price.output) * factor / 1e6


class Sandbox(Strict):
    backend: Literal[SANDBOX_BACKENDS] = "auto"
    slots: int = Field(1, ge=1, le=64, description="warm sandbox agents per worker")
    image: str | None = Field(None, description="docker image (default synthgen-sandbox:bookworm)")


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class Output(Strict):
    dir: StoragePath | None = None
    shard_rows: int = Field(1000, ge=1, description="rows per committed shard")
    commit_interval_s: float = Field(30.0, gt=0, description="commit finished seeds at least this often")


class Runtime(Strict):
    workers: int | None = Field(None, ge=1, description="actor pool size; default: the cluster's CPUs")
    seeds_per_batch: int | None = Field(
        None, ge=1,
        description="seeds per Ray task; default: the largest teacher max_in_flight, 8 to 128 (a Ray Data task "
        "costs ~15 ms of CPU across processes, so larger is cheaper; smaller commits sooner)",
    )
    state_shards: int | None = Field(
        None, ge=1, le=256,
        description="actors holding each validator's run-wide state (dedup's fingerprints), split by key; "
        "default: one per node",
    )

    def batch_size(self, max_in_flight: int) -> int:
        return self.seeds_per_batch or min(128, max(8, max_in_flight))


class WorkflowBase(Strict):
    """A workflow with steps and validators of any kind; `workflow_model` narrows them to the
    registered kinds."""

    name: str
    description: str = ""
    seeds: SeedSource
    teacher: Teacher | None = None
    teachers: dict[str, Teacher] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)
    validators: dict[str, ValidatorSpec] = Field(
        default_factory=dict, description="named checks; each runs on every sample before it is accepted"
    )
    sandbox: Sandbox = Field(default_factory=Sandbox)
    messages: list[Message] = Field(min_length=1)
    output: Output = Field(default_factory=Output)
    runtime: Runtime = Field(default_factory=Runtime)

    @field_validator("validators", mode="before")
    @classmethod
    def _kind_from_name(cls, value: Any) -> Any:
        """`exec: {code: solution}` means kind exec; other names say `kind:` themselves."""
        if isinstance(value, dict):
            return {name: {"kind": name, **spec} if isinstance(spec, dict) and "kind" not in spec else spec
                    for name, spec in value.items()}
        return value

    @model_validator(mode="after")
    def _references(self) -> WorkflowBase:
        if self.teacher is not None:
            if "default" in self.teachers:
                raise ValueError("give either 'teacher' or a 'default' entry in 'teachers', not both")
            self.teachers = {"default": self.teacher, **self.teachers}
            self.teacher = None
        if not self.teachers:
            self.teachers = {"default": Teacher()}
        later = {step.id for step in self.steps}
        known = {SEED_VARIABLE}
        conditions: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.id in known:
                raise ValueError(f"steps[{index}].id: duplicate step id '{step.id}'")
            step.check(References(self.steps, self.teachers, self.validators, index, known, later, conditions))
            known.add(step.id)
            if step.is_condition:
                conditions.add(step.id)
        for name, validator in self.validators.items():
            check_validator_fields(validator, known, f"validators.{name}")
        for index, message in enumerate(self.messages):
            check_template(message.content, known, f"messages[{index}].content")
        return self

    @property
    def field_names(self) -> list[str]:
        return [step.id for step in self.steps]

    @property
    def record_columns(self) -> tuple[str, ...]:
        """The optional record columns the steps fill (preference pairs, pivotal tokens)."""
        return tuple(dict.fromkeys(column for step in self.steps for column in step.record_columns))

    def step(self, step_id: str) -> StepSpec | None:
        return next((step for step in self.steps if step.id == step_id), None)

    @property
    def workflow_hash(self) -> str:
        """Hash of what decides the generated content: steps, validators and messages with the
        text of every template, and the teachers' model and sampling. Paths, limits and
        concurrency are left out so that resuming with other ones stays the same run."""
        content = self.model_dump(include={"name", "steps", "messages", "validators"})
        content["teachers"] = {name: t.model_dump(include=_GENERATION_KNOBS) for name, t in self.teachers.items()}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        seeds: str | None = None,
        out: str | None = None,
        teacher_url: str | None = None,
        model: str | None = None,
        limit: int | None = None,
    ) -> WorkflowBase:
        """Load and validate a workflow file; command-line overrides win over the YAML."""
        workflow = load_config(cls, path, "a workflow", "name, seeds, steps, messages, ...")
        if seeds is not None:
            workflow.seeds.path = str(Path(seeds).expanduser().resolve())
        if out is not None:
            workflow.output.dir = run_directory(out)
        if workflow.output.dir is None:
            workflow.output.dir = str(Path("out", workflow.name).resolve())
        for teacher in workflow.teachers.values():
            teacher.base_url = teacher_url or teacher.base_url
            teacher.model = model or teacher.model
        if limit is not None:
            workflow.seeds.limit = limit
        return workflow


def workflow_model(step_specs: dict[str, tuple[type[StepSpec], str | None]], validator_specs: list[type[ValidatorSpec]]) -> type[WorkflowBase]:
    """The workflow schema for these kinds. `step_specs` maps a kind's name to its spec and its
    marker: the key whose presence says a YAML step is of that kind (`from` → parse); the kind
    without a marker is what a step is when it has none of them."""
    markers = {marker: name for name, (_, marker) in step_specs.items() if marker}
    unmarked = [name for name, (_, marker) in step_specs.items() if not marker]
    if len(unmarked) != 1:
        raise ValueError(f"exactly one step kind may lack a marker key, found {unmarked}")
    tag_of = {spec: f"<{name}>" for name, (spec, _) in step_specs.items()}

    def step_kind(value: Any) -> str:
        if isinstance(value, BaseModel):
            return tag_of[type(value)]
        if isinstance(value, dict):
            for key, name in markers.items():
                if key in value:
                    return f"<{name}>"
        return f"<{unmarked[0]}>"

    def validator_kind(value: Any) -> str:
        kind = value.kind if isinstance(value, BaseModel) else value.get("kind") if isinstance(value, dict) else None
        return f"<{kind}>"

    # Tags are bracketed so they never collide with a key: error locations drop them.
    step = Annotated[Union[tuple(Annotated[spec, Tag(tag)] for spec, tag in tag_of.items())], Discriminator(step_kind)]
    validator_tags = [Annotated[spec, Tag(f"<{spec.model_fields['kind'].default}>")] for spec in validator_specs]
    validator = validator_specs[0] if len(validator_specs) == 1 else Annotated[Union[tuple(validator_tags)], Discriminator(validator_kind)]
    base = WorkflowBase.model_fields
    return create_model(
        "Workflow",
        __base__=WorkflowBase,
        __module__=__name__,
        steps=(list[step], Field(min_length=1)),
        validators=(dict[str, validator], Field(default_factory=dict, description=base["validators"].description)),
    )
