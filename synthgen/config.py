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
from typing import Annotated, Any, Literal, Union

import jinja2
import jinja2.meta
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

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
_GENERATION_KNOBS = {"model", "temperature", "top_p", "frequency_penalty", "max_tokens", "seed", "structured_output"}


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
    near_dedup: float | None = Field(None, gt=0, le=1, description="drop seeds this similar (MinHash) to an earlier one")
    decontaminate: DecontaminateValidator | None = Field(None, description="drop seeds that leak these benchmarks")
    curate: str | None = Field(None, description="a CURATE.yaml: the seeds are curated (filtered, scored, tagged) first")

    @field_validator("curate")
    @classmethod
    def _resolve_curate(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info))

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        return str(resolve_path(value, info))


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
    price_per_million_tokens: Price | None = None


class Example(Strict):
    """A worked example shown as an earlier exchange: small teachers follow formats from these."""

    user: str
    assistant: str


class _Step(Strict):
    id: str

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value) or value in _RESERVED_FIELDS:
            raise ValueError(f"step id '{value}' must be a Python identifier and not one of {sorted(_RESERVED_FIELDS)}")
        return value


class _Asks(_Step):
    """A step that talks to a teacher."""

    system: str | None = None
    examples: list[Example] = Field(default_factory=list, description="worked examples, sent as earlier turns")
    teacher: str = "default"
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)

    @field_validator("system")
    @classmethod
    def _load_system(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _template_text(value, info)


class GenerateStep(_Asks):
    """One chat turn against a teacher; its (parsed) answer becomes the field named `id`."""

    prompt: str
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

    @field_validator("prompt")
    @classmethod
    def _load_template(cls, value: str, info: ValidationInfo) -> str:
        return _template_text(value, info)


class ParseStep(_Step):
    """Extract structure from an earlier field: a code block, JSON, regex groups, or a
    `<think>...</think>` reasoning/answer split. Structured results are visible to later
    templates as `{{ id.name }}`."""

    from_: str = Field(alias="from")
    parse: Literal["code_block", "json", "regex", "think"]
    pattern: str | None = Field(None, description="with parse: regex, named groups become sub-fields")
    json_schema: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _options_match(self) -> ParseStep:
        if (self.parse == "regex") != (self.pattern is not None):
            raise ValueError("pattern is needed with parse: regex, and only there")
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern, re.DOTALL)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
            if not compiled.groupindex:
                raise ValueError("pattern needs named groups, e.g. (?P<question>...)")
        if self.json_schema is not None and self.parse != "json":
            raise ValueError("json_schema needs parse: json")
        return self

    @property
    def sub_fields(self) -> list[str]:
        if self.parse == "regex":
            return list(re.compile(self.pattern, re.DOTALL).groupindex)
        return ["reasoning", "answer"] if self.parse == "think" else []


class ValidateStep(_Step):
    """Run validators now; a failure rejects the sample with the validator's evidence."""

    validate_: list[str] = Field(alias="validate", min_length=1)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("validate_", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


DEFAULT_REVISE_PROMPT = """Your previous answer:
{{ previous }}

It did not pass this check:
{{ evidence }}

Write the complete corrected answer. Keep the same format as before."""


class ReviseStep(_Asks):
    """Critique-and-revise: while `until` fails, show the teacher the failing evidence and
    replace the field `revise` with its new answer, at most `max_rounds` times."""

    revise: str
    until: str = Field(description="a validator, or a judge step, that must pass")
    max_rounds: int = Field(ge=1, le=10, description="every revise loop needs this bound on its rounds")
    prompt: str = DEFAULT_REVISE_PROMPT
    parse: Literal["text", "code_block", "json"] | None = Field(None, description="default: the revised step's parse")

    @field_validator("prompt")
    @classmethod
    def _load_template(cls, value: str, info: ValidationInfo) -> str:
        return _template_text(value, info)


DEFAULT_JUDGE_PROMPT = """Grade the following text.

Rubric: {{ rubric }}

Text:
{{ text }}

Give a score from {{ low }} to {{ high }} and one sentence of reason, in exactly this form:
Score: <number>
Reason: <one sentence>"""


class JudgeStep(_Asks):
    """Score a field against a rubric; the score and rationale become the field `id`."""

    judge: str
    rubric: str
    scale: tuple[int, int] = (1, 10)
    min_score: float | None = Field(None, description="a lower score rejects the sample")
    must_exceed: str | None = Field(None, description="an earlier judge step whose score this one must beat")
    prompt: str = DEFAULT_JUDGE_PROMPT
    temperature: float | None = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(160, ge=1)

    @field_validator("rubric", "prompt")
    @classmethod
    def _load_template(cls, value: str, info: ValidationInfo) -> str:
        return _template_text(value, info)

    @model_validator(mode="after")
    def _scale(self) -> JudgeStep:
        low, high = self.scale
        if low >= high:
            raise ValueError("scale must be [low, high] with low < high")
        if self.min_score is not None and not low <= self.min_score <= high:
            raise ValueError(f"min_score {self.min_score} is outside the scale [{low}, {high}]")
        return self


_STEP_KEYS = {"revise": "revise", "judge": "judge", "validate": "validate", "from": "parse"}


def _step_kind(value: Any) -> str:
    if isinstance(value, BaseModel):
        return "<" + {GenerateStep: "generate", ParseStep: "parse", ValidateStep: "validate", ReviseStep: "revise",
                      JudgeStep: "judge"}[type(value)] + ">"
    if isinstance(value, dict):
        for key, kind in _STEP_KEYS.items():
            if key in value:
                return f"<{kind}>"
    return "<generate>"


# Tags are bracketed so they never collide with a key: error locations drop them.
Step = Annotated[
    Union[
        Annotated[GenerateStep, Tag("<generate>")],
        Annotated[ParseStep, Tag("<parse>")],
        Annotated[ValidateStep, Tag("<validate>")],
        Annotated[ReviseStep, Tag("<revise>")],
        Annotated[JudgeStep, Tag("<judge>")],
    ],
    Discriminator(_step_kind),
]


class ExecValidator(Strict):
    """Run the code in a field in the sandbox: against the tests in another field, or against
    example calls whose expected results come from a trusted reference implementation
    (`reference: seed` is the seed's own code), or alone (it must run cleanly)."""

    kind: Literal["exec"] = "exec"
    code: str
    tests: str | None = None
    calls: str | None = Field(None, description="a field of example calls, one Python expression per line")
    reference: str | None = Field(None, description="a field, or 'seed', holding trusted code the calls are checked against")
    vary_calls: bool = Field(True, description="also test each call with its integer arguments moved by one")
    language: Literal["python"] = "python"
    timeout_s: float = Field(10.0, gt=0, le=600)
    memory_mb: int = Field(512, ge=32)

    @model_validator(mode="after")
    def _one_oracle(self) -> ExecValidator:
        if self.tests and self.calls:
            raise ValueError("give either tests or calls, not both")
        if bool(self.calls) != bool(self.reference):
            raise ValueError("calls and reference go together: the reference gives each call's expected result")
        return self

    @property
    def field_refs(self) -> dict[str, str]:
        refs = {"code": self.code, "tests": self.tests, "calls": self.calls, "reference": self.reference}
        return {key: name for key, name in refs.items() if name and name != SEED_VARIABLE}


class BenchmarkFile(Strict):
    """A local JSONL/Parquet benchmark (or `hf:NAME[:split]` when the hub is reachable)."""

    path: str
    name: str | None = None
    id_field: str | None = None
    fields: list[str] | None = Field(None, description="text fields to index (default: every string field)")
    code_fields: list[str] = Field(default_factory=list, description="fields compared in canonical code form")

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        return value if value.startswith("hf:") else str(resolve_path(value, info))


BENCHMARK_REGISTRY = Path(__file__).resolve().parent.parent / "validators" / "benchmarks.yaml"


def known_benchmarks() -> dict[str, dict]:
    """Benchmark reference sets by name: validators/benchmarks.yaml, plus the built-in humaneval."""
    import yaml

    named = yaml.safe_load(BENCHMARK_REGISTRY.read_text()) if BENCHMARK_REGISTRY.is_file() else {}
    return {name: {"name": name, **spec} for name, spec in (named or {}).items()}


class DecontaminateValidator(Strict):
    """Reject samples that leak benchmark items: exact, n-gram overlap, MinHash, canonical code."""

    kind: Literal["decontaminate"] = "decontaminate"
    benchmarks: list[Union[str, BenchmarkFile]] = Field(default_factory=lambda: ["humaneval"],
                                                       description="names (humaneval, or validators/benchmarks.yaml) or files")

    @field_validator("benchmarks")
    @classmethod
    def _known_names(cls, value: list) -> list:
        names = {"humaneval", *known_benchmarks()}
        for item in value:
            if isinstance(item, str) and item not in names:
                raise ValueError(f"unknown benchmark '{item}'; valid names: {', '.join(sorted(names))} (or {{path: FILE}})")
        return value
    fields: list[str] | None = Field(None, description="fields to check (default: every field)")
    ngram: int = Field(13, ge=3, le=50, description="words per n-gram for the overlap check")
    min_overlap: int = Field(1, ge=1, description="shared n-grams that flag a sample")
    jaccard: float = Field(0.8, gt=0, le=1, description="MinHash similarity that flags a sample")
    code_ngram: int = Field(10, ge=3, le=50, description="tokens per n-gram of canonical code")
    code_containment: float = Field(0.6, gt=0, le=1, description="share of a benchmark solution's code n-grams found")

    @property
    def field_refs(self) -> dict[str, str]:
        return {f"fields[{i}]": name for i, name in enumerate(self.fields or [])}


class DedupValidator(Strict):
    """Reject near-duplicates across the whole run (all workers, and committed shards on resume):
    the first sample is kept, later ones say which record they repeat."""

    kind: Literal["dedup"] = "dedup"
    fields: list[str] | None = Field(None, description="fields compared (default: every field)")
    jaccard: float = Field(0.85, gt=0, le=1, description="MinHash similarity above which a sample is a near-duplicate")

    @property
    def field_refs(self) -> dict[str, str]:
        return {f"fields[{i}]": name for i, name in enumerate(self.fields or [])}


Validator = Annotated[Union[ExecValidator, DecontaminateValidator, DedupValidator], Field(discriminator="kind")]


class Sandbox(Strict):
    backend: Literal["auto", "bwrap", "docker", "process"] = "auto"
    slots: int = Field(1, ge=1, le=64, description="warm sandbox agents per worker")
    image: str | None = Field(None, description="docker image (default synthgen-sandbox:bookworm)")


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
        return None if value is None else str(resolve_path(value, info))


class Runtime(Strict):
    workers: int | None = Field(None, ge=1, description="actor pool size; default: the cluster's CPUs")
    seeds_per_batch: int | None = Field(
        None, ge=1,
        description="seeds per Ray task; default: the largest teacher max_in_flight, 8 to 128 (a Ray Data task "
        "costs ~15 ms of CPU across processes, so larger is cheaper; smaller commits sooner)",
    )

    def batch_size(self, max_in_flight: int) -> int:
        return self.seeds_per_batch or min(128, max(8, max_in_flight))


class Workflow(Strict):
    name: str
    description: str = ""
    seeds: SeedSource
    teacher: Teacher | None = None
    teachers: dict[str, Teacher] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    validators: dict[str, Validator] = Field(
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
    def _references(self) -> Workflow:
        if self.teacher is not None:
            if "default" in self.teachers:
                raise ValueError("give either 'teacher' or a 'default' entry in 'teachers', not both")
            self.teachers = {"default": self.teacher, **self.teachers}
            self.teacher = None
        if not self.teachers:
            self.teachers = {"default": Teacher()}
        later = {step.id for step in self.steps}
        known = {SEED_VARIABLE}
        judges: set[str] = set()
        for index, step in enumerate(self.steps):
            where = f"steps[{index}]"
            if step.id in known:
                raise ValueError(f"{where}.id: duplicate step id '{step.id}'")
            _StepCheck(self, where, known, later).check(step, index, judges)
            known.add(step.id)
            if isinstance(step, JudgeStep):
                judges.add(step.id)
        for name, validator in self.validators.items():
            _check_validator_fields(validator, known, f"validators.{name}")
        for index, message in enumerate(self.messages):
            _check_names(message.content, known, f"messages[{index}].content")
        return self

    @property
    def field_names(self) -> list[str]:
        return [step.id for step in self.steps]

    @property
    def workflow_hash(self) -> str:
        """Hash of what decides the generated content: steps, validators and messages with the
        text of every template, and the teachers' model and sampling. Paths, limits and
        concurrency are left out so that resuming with other ones stays the same run."""
        content = self.model_dump(include={"name", "steps", "messages", "validators"})
        content["teachers"] = {name: t.model_dump(include=_GENERATION_KNOBS) for name, t in self.teachers.items()}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


class _StepCheck:
    """Cross-step checks: every reference points at something that exists earlier."""

    def __init__(self, workflow: Workflow, where: str, known: set[str], later: set[str]):
        self.workflow, self.where, self.known, self.later = workflow, where, known, later

    def field(self, name: str, key: str) -> None:
        if name in self.known and name != SEED_VARIABLE:
            return
        fields = ", ".join(sorted(self.known - {SEED_VARIABLE})) or "none yet"
        problem = "is produced by this or a later step (a cycle)" if name in self.later else "is not a step id"
        raise ValueError(f"{self.where}.{key}: '{name}' {problem}; fields available here: {fields}")

    def check(self, step: Any, index: int, judges: set[str]) -> None:
        where, known = self.where, self.known
        if isinstance(step, _Asks):
            if step.teacher not in self.workflow.teachers:
                raise ValueError(f"{where}.teacher: unknown teacher '{step.teacher}'; valid: {', '.join(self.workflow.teachers)}")
            _check_names(step.system, known, f"{where}.system")
            for number, example in enumerate(step.examples):
                _check_names(example.user, known, f"{where}.examples[{number}].user")
                _check_names(example.assistant, known, f"{where}.examples[{number}].assistant")
        if isinstance(step, GenerateStep):
            if step.conversation == "continue" and not any(isinstance(s, GenerateStep) for s in self.workflow.steps[:index]):
                raise ValueError(f"{where}.conversation: no earlier generate step has a conversation to continue")
            _check_names(step.prompt, known, f"{where}.prompt")
        elif isinstance(step, ParseStep):
            self.field(step.from_, "from")
        elif isinstance(step, ValidateStep):
            for name in step.validate_:
                self.validator(name, "validate")
        elif isinstance(step, ReviseStep):
            self.field(step.revise, "revise")
            if step.until not in judges:
                self.validator(step.until, "until", judges)
            _check_names(step.prompt, known | {"previous", "evidence", "round"}, f"{where}.prompt")
        elif isinstance(step, JudgeStep):
            self.field(step.judge, "judge")
            if step.must_exceed is not None and step.must_exceed not in judges:
                raise ValueError(f"{where}.must_exceed: '{step.must_exceed}' is not an earlier judge step; "
                                 f"earlier judge steps: {', '.join(sorted(judges)) or 'none'}")
            _check_names(step.rubric, known, f"{where}.rubric")
            _check_names(step.prompt, known | {"rubric", "text", "low", "high"}, f"{where}.prompt")

    def validator(self, name: str, key: str, judges: set[str] = frozenset()) -> None:
        validators = self.workflow.validators
        if name not in validators:
            choices = sorted(validators) + sorted(judges)
            raise ValueError(f"{self.where}.{key}: unknown validator '{name}'; valid: {', '.join(choices) or 'none defined (add validators:)'}")
        if validators[name].kind == "dedup":
            raise ValueError(f"{self.where}.{key}: '{name}' is a dedup validator: it runs last, on samples about to be accepted")
        _check_validator_fields(validators[name], self.known, f"{self.where}.{key}")


def _check_validator_fields(validator: Any, known: set[str], where: str) -> None:
    for key, name in validator.field_refs.items():
        if name not in known or name == SEED_VARIABLE:
            raise ValueError(f"{where}: validator field {key}: '{name}' is not produced before this point; "
                             f"fields available: {', '.join(sorted(known - {SEED_VARIABLE})) or 'none'}")


def resolve_path(value: str, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _template_text(value: str, info: ValidationInfo) -> str:
    looks_like_file = "\n" not in value and "{" not in value and value.endswith(_TEMPLATE_SUFFIXES)
    if not looks_like_file:
        return value
    path = resolve_path(value, info)
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
