"""`exec`: run a code field against a tests field in the sandbox."""

from __future__ import annotations

from typing import Any

from synthgen.config import ExecValidator
from synthgen.engine.sandbox import AgentPool, Job, Limits
from synthgen.engine.validators.base import Check


class ExecCheck:
    def __init__(self, name: str, spec: ExecValidator, sandbox: AgentPool):
        self.name = name
        self.spec = spec
        self.sandbox = sandbox
        self.fields = tuple(f for f in (spec.code, spec.tests) if f)
        self.limits = Limits(wall_s=spec.timeout_s, cpu_s=max(1, int(spec.timeout_s)), memory_mb=spec.memory_mb)

    async def check(self, fields: dict[str, Any]) -> Check:
        code = str(fields.get(self.spec.code, ""))
        if self.spec.tests:
            job = Job.with_tests(code, str(fields.get(self.spec.tests, "")), self.limits)
        else:
            job = Job.script(code, self.limits)
        result = await self.sandbox.run_async(job)
        if result.status == "passed":
            passed = len(result.tests)
            return Check(True, f"{passed} test{'s' if passed != 1 else ''} passed" if self.spec.tests else "ran cleanly")
        return Check(False, f"{result.status}: {result.reason}".strip(": "), result.evidence)

    def close(self) -> None:
        """The sandbox belongs to whoever opened it."""
