"""`exec`: run a code field in the sandbox, against a tests field or against example calls
checked by a trusted reference implementation (differential testing)."""

from __future__ import annotations

import ast
from typing import Literal

from pydantic import Field, model_validator

from synthgen.config.base import SEED_VARIABLE
from synthgen.config.errors import UserError
from synthgen.config.kinds import ValidatorSpec
from synthgen.engine.codenorm import code_parts
from synthgen.engine.sandbox import AgentPool, Job, Limits, SandboxUnavailable, open_sandbox
from synthgen.engine.validators.base import Check, Inputs, Services, ValidatorKind

MAX_CALLS = 20


class ExecSpec(ValidatorSpec):
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
    def _one_oracle(self) -> ExecSpec:
        if self.tests and self.calls:
            raise ValueError("give either tests or calls, not both")
        if bool(self.calls) != bool(self.reference):
            raise ValueError("calls and reference go together: the reference gives each call's expected result")
        return self

    def field_refs(self) -> dict[str, str]:
        refs = {"code": self.code, "tests": self.tests, "calls": self.calls, "reference": self.reference}
        return {key: name for key, name in refs.items() if name and name != SEED_VARIABLE}


class ExecCheck:
    def __init__(self, name: str, spec: ExecSpec, sandbox: AgentPool):
        self.name = name
        self.spec = spec
        self.sandbox = sandbox
        self.fields = tuple(spec.field_refs().values())
        self.limits = Limits(wall_s=spec.timeout_s, cpu_s=max(1, int(spec.timeout_s)), memory_mb=spec.memory_mb)

    async def check(self, inputs: Inputs, record_id: str = "") -> Check:
        spec, fields = self.spec, inputs.fields
        code = str(fields.get(spec.code, ""))
        if spec.calls:
            calls = example_calls(str(fields.get(spec.calls, "")))
            if spec.vary_calls:
                calls = varied(calls)
            if not calls:
                return Check(False, "no example calls in the field " + spec.calls, "Write each call on its own line.")
            reference = fields[SEED_VARIABLE]["text"] if spec.reference == SEED_VARIABLE else str(fields.get(spec.reference, ""))
            job = Job.with_calls(code, calls, reference, self.limits)
        elif spec.tests:
            job = Job.with_tests(code, str(fields.get(spec.tests, "")), self.limits)
        else:
            job = Job.script(code, self.limits)
        result = await self.sandbox.run_async(job)
        if result.status == "passed":
            count = len(result.tests)
            return Check(True, f"{count} test{'s' if count != 1 else ''} passed" if spec.tests or spec.calls else "ran cleanly")
        return Check(False, f"{result.status}: {result.reason}".strip(": "), result.evidence,
                     fixable=result.broken not in ("tests", "reference"))


def example_calls(text: str) -> list[str]:
    """The call expressions in a teacher's answer, one per line. `>>> f(x)`, `assert f(x) == y`,
    `y = f(x)` and `print(f(x))` all give `f(x)`: the reference supplies the expected value."""
    source = "\n".join(code_parts(text)) or text
    calls: list[str] = []
    for line in source.splitlines():
        line = line.strip().removeprefix(">>>").strip()
        try:
            tree = ast.parse(line, mode="exec")
        except SyntaxError:
            continue
        if len(tree.body) != 1:
            continue
        node = tree.body[0]
        value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
            value = node.test.left
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print" and value.args:
            value = value.args[0]  # print(f(x)) shows f(x)
        if isinstance(value, ast.Call):
            call = ast.unparse(value)
            if call not in calls:
                calls.append(call)
    return calls[:MAX_CALLS]


def varied(calls: list[str], limit: int = MAX_CALLS) -> list[str]:
    """More tests for free: each call again with one integer argument moved by one either way.
    The reference gives the expected value, so a varied input is as good a test as the
    teacher's own (an input the reference rejects is simply not used)."""
    result = list(calls)
    for call in calls:
        tree = ast.parse(call, mode="eval")
        constants = [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and type(node.value) is int]
        for node in constants:
            original = node.value
            for value in (original - 1, original + 1):
                node.value = value
                variant = ast.unparse(tree)
                if variant not in result:
                    result.append(variant)
            node.value = original
    return result[:limit]


def prepare(name: str, spec: ExecSpec, workflow) -> None:
    """Fail in a second, before any worker starts, when no sandbox can run here."""
    config = workflow.sandbox
    try:
        with open_sandbox(config.backend, slots=1, image=config.image) as sandbox:
            sandbox.warm_up()
    except SandboxUnavailable as exc:
        raise UserError(f"validator {name} needs a sandbox ({config.backend}): {exc}") from None


def build(name: str, spec: ExecSpec, services: Services) -> ExecCheck:
    if services.sandbox is None:
        raise ValueError(f"validator {name}: exec needs a sandbox")
    return ExecCheck(name, spec, services.sandbox())


KIND = ValidatorKind("exec", ExecSpec, build, prepare=prepare)
