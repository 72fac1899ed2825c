"""Shared fixtures: one real local Ray for the session, a scripted teacher per test, and helpers
that run the real `synthgen` command in a subprocess."""

from __future__ import annotations

import os
import shutil
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


def synthgen_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthgen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def apt_install(*packages: str) -> bool:
    """Install Debian packages for a test that needs a real program (root + apt only); the
    package lists may be stale on a fresh machine, so one `apt-get update` is allowed."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(command, capture_output=True, env=env, timeout=900).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=900)
    return subprocess.run(command, capture_output=True, env=env, timeout=900).returncode == 0
