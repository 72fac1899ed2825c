"""Shared fixtures: one real local Ray for the session, a scripted teacher per test, and helpers
that run the real `synthgen` command in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Before anything imports ray: no auth token under $HOME, Ray's files in a temp dir.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_TMPDIR", os.path.join(tempfile.gettempdir(), "synthgen-tests-ray"))
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

from synthgen.scripted_teacher import ScriptedTeacher  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CODE_SEEDS = REPO / "seeds" / "python"


# What makes a test slow (`pytest -m "not slow"` leaves these out): it starts Ray, a cluster, a
# run it kills, the real LLM, or a Docker engine. Tests slow for another reason say so themselves.
SLOW_FIXTURES = {"ray_local", "two_node_cluster", "slow_teacher"}
SLOW_MODULES = {"test_crash", "test_embedded_teacher", "test_cluster"}


def pytest_collection_modifyitems(items):
    for item in items:
        backend = getattr(getattr(item, "callspec", None), "params", {}).get("pool")
        if (SLOW_FIXTURES & set(item.fixturenames) or item.module.__name__ in SLOW_MODULES
                or backend == "docker" or "docker" in item.name):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=os.environ["RAY_TMPDIR"], logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def teacher():
    with ScriptedTeacher() as server:
        yield server


def workflow_yaml(path: Path, *, seeds: Path, url: str, extra_steps: str = "", shard_rows: int = 5, **teacher: object) -> Path:
    """A two-step instruction-reversal workflow against `url` (the scripted teacher answers CODE prompts
    with a code block)."""
    teacher_fields = {"base_url": url, "model": "scripted", "max_retries": 1, "timeout_s": 10, **teacher}
    teacher_yaml = ", ".join(f"{k}: {v}" for k, v in teacher_fields.items())
    path.write_text(
        f"""name: test_reversal
seeds: {{path: {seeds}, kind: code}}
teacher: {{{teacher_yaml}}}
steps:
  - id: instruction
    prompt: "Describe the task solved by: {{{{ seed.text }}}}"
  - id: solution
    prompt: "CODE for: {{{{ instruction }}}}"
    parse: code_block
{extra_steps}messages:
  - {{role: user, content: "{{{{ instruction }}}}"}}
  - {{role: assistant, content: "{{{{ solution }}}}"}}
output: {{shard_rows: {shard_rows}, commit_interval_s: 1}}
runtime: {{seeds_per_batch: 2}}
"""
    )
    return path


def synthgen_cli(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthgen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
