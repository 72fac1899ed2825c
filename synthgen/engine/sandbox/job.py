"""What a sandbox runs and what it reports: `Job`, `Limits`, `Result`."""

from __future__ import annotations

import json
import secrets
from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["passed", "failed", "error", "timeout", "memory", "killed"]


class Limits(BaseModel):
    wall_s: float = Field(10.0, gt=0)
    cpu_s: int = Field(10, gt=0)
    memory_mb: int = Field(512, ge=32)
    processes: int = Field(32, ge=1)
    output_bytes: int = Field(64 * 1024, ge=1024)
    file_bytes: int = Field(16 * 1024 * 1024, ge=0)


class Job(BaseModel):
    """Files to place in a fresh work dir, and either a Python entry or a command to run there.

    `python` runs the file in the sandbox's warm interpreter (fork, no exec: the fast path); a
    name starting with `@` is a file shipped with the agent (`@harness.py`, the test runner);
    `argv` execs any command. The environment is `env` and nothing else."""

    files: dict[str, str] = Field(default_factory=dict)
    python: str | None = None
    argv: list[str] | None = None
    args: list[str] = Field(default_factory=list)
    stdin: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    tests: bool = False  # the entry is the test harness: per-test outcomes come back

    @classmethod
    def script(cls, code: str, limits: Limits | None = None, stdin: str = "") -> Job:
        return cls(files={"main.py": code}, python="main.py", stdin=stdin, limits=limits or Limits())

    @classmethod
    def with_tests(cls, code: str, tests: str, limits: Limits | None = None) -> Job:
        return cls(
            files={"solution.py": code, "test_solution.py": tests},
            python="@harness.py",
            args=["solution.py", "--tests", "test_solution.py"],
            limits=limits or Limits(),
            tests=True,
        )

    @classmethod
    def with_calls(cls, code: str, calls: list[str], reference: str, limits: Limits | None = None) -> Job:
        """Differential tests: every call must return what the trusted `reference` code returns."""
        return cls(
            files={"solution.py": code, "reference.py": reference, "calls.txt": "\n".join(calls) + "\n"},
            python="@harness.py",
            args=["solution.py", "--calls", "calls.txt", "--reference", "reference.py"],
            limits=limits or Limits(),
            tests=True,
        )


class CaseOutcome(BaseModel):
    name: str
    passed: bool
    error: str | None = None


class Result(BaseModel):
    status: Status
    reason: str = ""
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    duration_s: float = 0.0
    cpu_s: float = 0.0
    tests: list[CaseOutcome] = Field(default_factory=list)
    backend: str = ""
    # Which input made it fail to run at all: "solution", or the oracle ("tests", "reference").
    broken: str | None = None

    @property
    def failed_tests(self) -> list[str]:
        return [test.name for test in self.tests if not test.passed]

    @property
    def evidence(self) -> str:
        """What a revise prompt should see: the failing tests and their tracebacks, or the crash."""
        if self.status == "passed":
            return "all tests passed"
        lines = [f"status: {self.status}" + (f" ({self.reason})" if self.reason else "")]
        for test in self.tests:
            if not test.passed:
                lines.append(f"FAILED {test.name}\n{(test.error or '').strip()}")
        if not self.tests and self.stderr.strip():
            lines.append(self.stderr.strip()[-2000:])
        return "\n".join(lines)


def agent_request(job: Job) -> tuple[dict, str]:
    """The frame sent to the agent, and the nonce a genuine test report must carry."""
    request = job.model_dump(exclude={"tests"})
    request["limits"] = job.limits.model_dump()
    nonce = ""
    if job.tests:
        nonce = secrets.token_hex(16)
        request["env"] = {**job.env, "SYNTHGEN_REPORT_NONCE": nonce}
        request["report"] = True
    return request, nonce


def classify(reply: dict, job: Job, nonce: str, backend: str) -> Result:
    """Turn the agent's raw reply into a verdict-level status."""
    common = {
        key: reply.get(key, 0) for key in ("stdout_bytes", "stderr_bytes", "duration_s", "cpu_s")
    } | {"exit_code": reply.get("exit_code"), "stdout": reply.get("stdout", ""), "stderr": reply.get("stderr", "")}
    common["backend"] = backend
    limit = reply.get("limit_hit")
    exit_code = reply.get("exit_code")
    stderr = common["stderr"]
    if limit == "timeout":
        return Result(status="timeout", reason=f"wall time over {job.limits.wall_s:g} s", **common)
    if limit == "output":
        return Result(status="killed", reason=f"output over {4 * job.limits.output_bytes} bytes", **common)
    if "MemoryError" in stderr[-2000:] or _oom_killed(reply, job):
        return Result(status="memory", reason=f"memory over {job.limits.memory_mb} MB", **common)
    if exit_code is not None and exit_code < 0:
        signal_name = {-9: "SIGKILL", -24: "SIGXCPU", -25: "SIGXFSZ", -11: "SIGSEGV", -6: "SIGABRT"}.get(exit_code)
        reason = {-24: "CPU time limit", -25: "file size limit"}.get(exit_code, f"signal {signal_name or -exit_code}")
        status = "timeout" if exit_code == -24 else "killed"
        return Result(status=status, reason=reason, **common)
    if not job.tests:
        return Result(status="passed" if exit_code == 0 else "failed", reason="" if exit_code == 0 else f"exit code {exit_code}", **common)
    return _test_result(reply.get("report", ""), nonce, common)


def _oom_killed(reply: dict, job: Job) -> bool:
    return reply.get("exit_code") == -9 and reply.get("max_rss_kb", 0) * 1024 >= 0.9 * job.limits.memory_mb * 2**20


def _test_result(report_text: str, nonce: str, common: dict) -> Result:
    try:
        report = json.loads(report_text)
    except ValueError:
        report = None
    if not isinstance(report, dict) or report.get("nonce") != nonce or not nonce:
        return Result(status="error", reason="the tests did not run to completion (no valid report)", **common)
    tests = [CaseOutcome.model_validate(test) for test in report.get("tests", [])]
    if report.get("error"):
        stage = report.get("stage")
        what = {"solution": "the solution failed to load", "reference": "the reference failed to load"}.get(
            stage, "the tests failed to load")
        error = str(report["error"])
        return Result(status="error", reason=f"{what}: {error.strip().splitlines()[-1][:300]}", tests=tests,
                      broken=stage, **{**common, "stderr": (common["stderr"] + "\n" + error).strip()})
    failed = [test.name for test in tests if not test.passed]
    if failed:
        return Result(status="failed", reason=f"{len(failed)} of {len(tests)} tests failed: {', '.join(failed[:5])}", tests=tests, **common)
    return Result(status="passed", tests=tests, **common)
