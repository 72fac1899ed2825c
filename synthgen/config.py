"""The workflow YAML schema: pure data (pydantic + jinja2 parsing), no Ray, HTTP or Arrow.

A workflow names its seeds, its teachers, the steps one seed goes through, how the record's
chat `messages` are assembled from the step fields, and where the shards go. Relative paths
are resolved against the YAML file; `${VAR}` / `${VAR:-default}` come from the environment.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from synthgen.errors import UserError
from synthgen.yamlsource import load_yaml, validate

EMBEDDED = "embedded"
SEED_VARIABLE = "seed"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2", ".txt", ".md")
# Step ids become Parquet columns beside these, so they must not collide with them.
_RESERVED_FIELDS = {
    SEED_VARIABLE, "record_id", "seed_id", "sample_index", "workflow", "workflow_hash", "messages", "turns",
    "verdicts", "teacher_model", "created_at", "node", "stage", "reason", "raw",
}
_GENERATION_KNOBS = {"model", "temperature", "top_p", "max_tokens", "seed", "structured_output"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class SeedSource(Strict):
    """Where seeds come from and how to cut them."""

    path: str
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

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        return str(_resolve_path(value, info))


class Price(Strict):
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Teacher(Strict):
    """One OpenAI-compatible endpoint. The API key is read from `api_key_env`, never from YAML."""

    base_url: str = EMBEDDED
    model: str = "smollm2-135m-instruct"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.2, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
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
    down_after_s: float = Field(300.0, gt=0, description="stop the run when no seed got through for this long")
    price_per_million_tokens: Price | None = None


class Example(Strict):
    """A worked example shown as an earlier exchange: small teachers follow formats from these."""

    user: str
    assistant: str


class GenerateStep(Strict):
    """One chat turn against a teacher; its (parsed) answer becomes the field named `id`."""

    id: str
    prompt: str
    system: str | None = None
    examples: list[Example] = Field(default_factory=list)
    parse: Literal["text", "code_block", "json"] = "text"
    conversation: Literal["new", "continue"] = "new"
    teacher: str = "default"
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
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

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value) or value in _RESERVED_FIELDS:
            raise ValueError(f"step id '{value}' must be a Python identifier and not one of {sorted(_RESERVED_FIELDS)}")
        return value

    @field_validator("prompt", "system")
    @classmethod
    def _load_template(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _template_text(value, info)


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class Output(Strict):
    dir: str | None = None
    shard_rows: int = Field(1000, ge=1, description="rows per committed shard")
    commit_interval_s: float = Field(30.0, gt=0, description="commit finished seeds at least this often")

    @field_validator("dir")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(_resolve_path(value, info))


class Runtime(Strict):
    workers: int | None = Field(None, ge=1, description="actor pool size; default: the cluster's CPUs")
    seeds_per_batch: int = Field(32, ge=1, description="seeds per Ray task; larger amortises task overhead")


class Workflow(Strict):
    name: str
    description: str = ""
    seeds: SeedSource
    teacher: Teacher | None = None
    teachers: dict[str, Teacher] = Field(default_factory=dict)
    steps: list[GenerateStep] = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    output: Output = Field(default_factory=Output)
    runtime: Runtime = Field(default_factory=Runtime)

    @model_validator(mode="after")
    def _references(self) -> Workflow:
        if self.teacher is not None:
            if "default" in self.teachers:
                raise ValueError("give either 'teacher' or a 'default' entry in 'teachers', not both")
            self.teachers = {"default": self.teacher, **self.teachers}
            self.teacher = None
        if not self.teachers:
            self.teachers = {"default": Teacher()}
        known = {SEED_VARIABLE}
        for index, step in enumerate(self.steps):
            where = f"steps[{index}]"
            if step.id in known:
                raise ValueError(f"{where}.id: duplicate step id '{step.id}'")
            if step.teacher not in self.teachers:
                raise ValueError(f"{where}.teacher: unknown teacher '{step.teacher}'; valid: {', '.join(self.teachers)}")
            if step.conversation == "continue" and index == 0:
                raise ValueError(f"{where}.conversation: the first step has no conversation to continue")
            for label, template in (("prompt", step.prompt), ("system", step.system)):
                _check_names(template, known, f"{where}.{label}")
            for number, example in enumerate(step.examples):
                _check_names(example.user, known, f"{where}.examples[{number}].user")
                _check_names(example.assistant, known, f"{where}.examples[{number}].assistant")
            known.add(step.id)
        for index, message in enumerate(self.messages):
            _check_names(message.content, known, f"messages[{index}].content")
        return self

    @property
    def field_names(self) -> list[str]:
        return [step.id for step in self.steps]

    @property
    def workflow_hash(self) -> str:
        """Hash of what decides the generated content: steps and messages with the text of every
        template, and the teachers' model and sampling. Paths, limits and concurrency are left
        out so that resuming with other ones stays the same run."""
        content = self.model_dump(include={"name", "steps", "messages"})
        content["teachers"] = {name: t.model_dump(include=_GENERATION_KNOBS) for name, t in self.teachers.items()}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _resolve_path(value: str, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _template_text(value: str, info: ValidationInfo) -> str:
    looks_like_file = "\n" not in value and "{" not in value and value.endswith(_TEMPLATE_SUFFIXES)
    if not looks_like_file:
        return value
    path = _resolve_path(value, info)
    if not path.is_file():
        raise ValueError(f"template file not found: {path}")
    return path.read_text(encoding="utf-8")


_JINJA = jinja2.Environment()


def _check_names(template: str | None, known: set[str], where: str) -> None:
    if template is None:
        return
    try:
        parsed = _JINJA.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"{where}: template syntax error on its line {exc.lineno}: {exc.message}") from None
    unknown = jinja2.meta.find_undeclared_variables(parsed) - known
    if unknown:
        raise ValueError(
            f"{where}: template uses unknown field(s) {', '.join(sorted(unknown))}; "
            f"available here: {', '.join(sorted(known))}"
        )


def load_workflow(
    path: str | Path,
    *,
    seeds: str | None = None,
    out: str | None = None,
    teacher_url: str | None = None,
    model: str | None = None,
    limit: int | None = None,
) -> Workflow:
    """Load and validate a workflow; command-line overrides win over the YAML."""
    source = load_yaml(Path(path))
    if not isinstance(source.data, dict):
        raise UserError(f"{source.path}: a workflow must be a mapping of keys (name, seeds, steps, messages, ...)")
    workflow: Workflow = validate(Workflow, source, {"base_dir": source.path.parent.resolve()})
    if seeds is not None:
        workflow.seeds.path = str(Path(seeds).expanduser().resolve())
    if out is not None:
        workflow.output.dir = str(Path(out).expanduser().resolve())
    if workflow.output.dir is None:
        workflow.output.dir = str(Path("out", workflow.name).resolve())
    for teacher in workflow.teachers.values():
        teacher.base_url = teacher_url or teacher.base_url
        teacher.model = model or teacher.model
    if limit is not None:
        workflow.seeds.limit = limit
    return workflow
