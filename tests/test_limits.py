"""Cluster-wide limits and run-level teacher behaviour on real Ray with two workers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import SHIPPED_CODE_SEEDS, synthgen_cli, workflow_yaml

import synthgen
from synthgen.scripted_teacher import Fault

RATE_PER_MINUTE = 600  # 10 requests/s for all workers together


def _max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_requests_per_minute_hold_across_two_workers(ray_local, teacher, tmp_path):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url,
                         requests_per_minute=RATE_PER_MINUTE, max_in_flight=16)
    report = synthgen.run(path, out=str(tmp_path / "out"), limit=40)
    assert report.status == "done" and teacher.total_requests == 80
    rate = RATE_PER_MINUTE / 60
    span = max(teacher.request_times) - min(teacher.request_times)
    assert span >= (80 - rate) / rate * 0.9, f"80 requests in {span:.1f}s breaks {rate}/s"
    # A bucket holds half a second of traffic: any 2 s window sees at most 2.5 s worth.
    assert _max_in_window(teacher.request_times, 2.0) <= rate * 2.5 + 1


def test_a_429_pauses_every_worker_for_retry_after(ray_local, teacher, tmp_path):
    teacher.faults.append(Fault(kind="status", status=429, retry_after=2.0, match="def merge_sort"))
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url,
                         requests_per_minute=1200, max_in_flight=8, backoff_s=0.05)
    report = synthgen.run(path, out=str(tmp_path / "out"), limit=30)
    assert report.status == "done"
    rejected_at = next(t for body, t in zip(teacher.bodies, teacher.request_times)
                       if "def merge_sort" in body["messages"][-1]["content"])
    # Requests already leased may land just after the 429; then nothing until Retry-After passes.
    later = [t - rejected_at for t in teacher.request_times if t > rejected_at]
    assert later, "the run went on after the 429"
    assert sum(1 for d in later if 0.3 < d < 1.9) == 0, "a worker kept sending during Retry-After"
    retried = [t for body, t in zip(teacher.bodies, teacher.request_times)
               if "def merge_sort" in body["messages"][-1]["content"] and t > rejected_at]
    assert retried and retried[0] - rejected_at >= 2.0


def test_thirty_percent_of_calls_failing_still_covers_every_seed_every_time(ray_local, teacher, tmp_path):
    """429s and 500s on 30 % of calls: five runs in a row (~120 calls, ~36 failing), each ends
    done with every seed settled (a request out of retries goes back to the queue while the
    endpoint answers others)."""
    teacher.faults += [Fault(kind="status", status=429, times=None, rate=0.2),
                       Fault(kind="status", status=500, times=None, rate=0.125)]  # 20 % + 80 % x 12.5 % = 30 %
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, max_retries=4,
                         backoff_s=0.02, max_backoff_s=0.1, max_in_flight=8)
    for run in range(5):
        report = synthgen.run(path, out=str(tmp_path / f"out{run}"), limit=12)
        assert (report.status, report.summary["seeds"], len(report.unsettled)) == ("done", 12, 0), report.message
    failed = teacher.total_requests - 5 * 24
    assert failed > 0.2 * teacher.total_requests, "the faults were injected"


def test_a_teacher_that_stays_down_stops_the_run_in_bounded_time(ray_local, teacher, tmp_path):
    teacher.faults.append(Fault(kind="status", status=503, match="CODE", times=None))  # second step always fails
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, max_retries=0,
                         down_after_s=2)
    report = synthgen.run(path, out=str(tmp_path / "out"))
    assert report.status == "partial"
    assert "the teacher is down" in report.message and "HTTP 503" in report.message
    assert report.processed < 65, "the run stopped instead of failing every seed"
    assert report.summary["seeds"] == 0


@pytest.mark.slow  # a whole run in a subprocess (or the real LLM)
def test_api_key_reaches_the_teacher_and_nothing_else(teacher, tmp_path):
    canary = "sk-canary-7f3e9a1c5b2d4e6f8a0b"
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url,
                         price_per_million_tokens="{input: 0.15, output: 0.6}")
    ray_dir = tempfile.mkdtemp(prefix="sg-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    try:
        result = synthgen_cli("run", str(path), "--out", str(tmp_path / "out"), "--limit", "4",
                              env={"OPENAI_API_KEY": canary, "RAY_TMPDIR": ray_dir})
        assert result.returncode == 0, result.stderr
        assert teacher.headers and all(h.get("authorization") == f"Bearer {canary}" for h in teacher.headers)
        assert canary not in result.stdout + result.stderr
        leaks = [p for root in (tmp_path / "out", Path(ray_dir)) for p in _files(root) if canary.encode() in p.read_bytes()]
        assert not leaks, f"the API key leaked into {leaks}"
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["teacher"]["cost_usd"] > 0
    assert "cost $" in result.stdout


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_socket() and os.access(p, os.R_OK)]
