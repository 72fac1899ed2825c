"""Nothing is lost, nothing is duplicated: kill -9 of the driver or of a worker, and Ctrl-C,
at some moment of a real run in a subprocess; then the same command resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SHIPPED_CODE_SEEDS, workflow_yaml

from synthgen.config.workflow import SeedSource
from synthgen.storage.query import connect
from synthgen.storage.layout import commit_markers
from synthgen.scripted_teacher import ScriptedTeacher
from synthgen.seeds.load import load_seeds

SEEDS = load_seeds(SeedSource(path=str(SHIPPED_CODE_SEEDS))).seeds


@pytest.fixture
def slow_teacher():
    with ScriptedTeacher(latency_s=0.15) as server:
        yield server


def _start(workflow: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "synthgen", "run", str(workflow), "--out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )


def _ctrl_c_as_in_a_terminal() -> None:
    """A suite started in the background (`cmd &`, some CI runners) inherits SIGINT ignored, and
    so would the run: Ctrl-C then only counted while a commit deferred it. A run started from a
    terminal has the default disposition; so does this one."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_commits(out: Path, count: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list((out / "_commits").glob("part-*.json"))) < count:
        assert process.poll() is None, f"run ended before {count} commits: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no commits in time"
        time.sleep(0.05)


def _cleanup_session(process: subprocess.Popen) -> None:
    """Ray helpers of a killed driver outlive it; end them so later tests start clean."""
    subprocess.run(["pkill", "-9", "-s", str(process.pid)], check=False)


def _assert_exactly_once(out: Path) -> None:
    rows = connect(out).execute("SELECT seed_id FROM data UNION ALL SELECT seed_id FROM rejects").fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a seed was written twice"
    assert set(ids) == {s.seed_id for s in SEEDS}, "a seed was lost"
    marker_ids = [i for m in commit_markers(out) for i in m["seed_ids"]]
    assert sorted(marker_ids) == sorted(ids)
    assert not list(out.rglob("*.tmp"))


def _interrupt(workflow: Path, out: Path, after_commits: int, strike) -> subprocess.CompletedProcess:
    """Start a run, `strike(process)` once it has committed `after_commits` shards, let it end."""
    process = _start(workflow, out)
    try:
        _wait_for_commits(out, after_commits, process)
        strike(process)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        _cleanup_session(process)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _resume(workflow: Path, out: Path) -> str:
    process = _start(workflow, out)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    _assert_exactly_once(out)
    return stderr


def _committed(out: Path) -> set[str]:
    return {i for m in commit_markers(out) for i in m["seed_ids"]}


# One request in flight per worker: the run lasts ~10 s, so a strike after the first commits
# lands mid-run however fast the machine.
PACED = {"max_in_flight": 1}


def test_sigkill_of_the_driver_then_resume(slow_teacher, tmp_path):
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=slow_teacher.url, shard_rows=2, **PACED)
    out = tmp_path / "out"
    _interrupt(workflow, out, 3, lambda process: process.send_signal(signal.SIGKILL))
    committed = _committed(out)
    assert 0 < len(committed) < len(SEEDS)
    slow_teacher.requests.clear()

    stderr = _resume(workflow, out)
    assert f"resuming: {len(committed)} seeds already committed" in stderr
    for seed in SEEDS:
        if seed.seed_id in committed:
            assert slow_teacher.requests_containing(seed.text[:120]) == 0, "a committed seed was paid for again"
    assert slow_teacher.total_requests <= 2 * (len(SEEDS) - len(committed))


def test_workers_send_no_request_once_the_driver_is_killed(slow_teacher, tmp_path):
    """Ray takes seconds to end a dead driver's workers; they must not spend them on requests."""
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=slow_teacher.url, shard_rows=2, **PACED)
    process = _start(workflow, tmp_path / "out")
    try:
        _wait_for_commits(tmp_path / "out", 2, process)
        killed_at = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        time.sleep(4)
        with slow_teacher._lock:
            late = [t - killed_at for t in slow_teacher.request_times if t > killed_at + 0.05]
    finally:
        _cleanup_session(process)
    assert not late, f"{len(late)} requests went out after the driver was killed (first {late[0]:.2f} s after)"


def _kill_one_worker(process: subprocess.Popen) -> None:
    workers = subprocess.run(["pgrep", "-s", str(process.pid), "-f", "ray::MapWorker"], capture_output=True, text=True)
    pids = [int(p) for p in workers.stdout.split()]
    assert pids, "no worker actor found"
    os.kill(pids[0], signal.SIGKILL)


def test_sigkill_of_a_worker_mid_run_loses_nothing(slow_teacher, tmp_path):
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=slow_teacher.url, shard_rows=2)
    out = tmp_path / "out"
    result = _interrupt(workflow, out, 2, _kill_one_worker)
    assert result.returncode == 0, result.stderr
    _assert_exactly_once(out)


def test_ctrl_c_commits_what_is_finished_and_says_how_to_resume(slow_teacher, tmp_path):
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=slow_teacher.url, shard_rows=2, **PACED)
    out = tmp_path / "out"
    result = _interrupt(workflow, out, 2, lambda process: process.send_signal(signal.SIGINT))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Run the same command again to resume" in result.stdout + result.stderr
    assert 0 < len(_committed(out)) < len(SEEDS)
    _resume(workflow, out)


@pytest.mark.parametrize("delays", [(1.0, 4.0, 5.5)], ids=["startup-and-mid-run"])
def test_repeated_kills_at_arbitrary_moments_then_resume(slow_teacher, tmp_path, delays):
    """Kills that do not wait for a commit: during start-up, mid-stream, mid-commit, whatever
    the moment happens to be. The output must still end exactly-once."""
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=slow_teacher.url, shard_rows=3)
    out = tmp_path / "out"
    for delay in delays:
        process = _start(workflow, out)
        try:
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            _cleanup_session(process)
    _resume(workflow, out)
