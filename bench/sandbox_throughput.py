"""Sandbox throughput per backend: executions per second and latency percentiles.

Per backend: 1,000 tiny passing snippets, 500 solutions checked by the test harness (a test
function with five asserts: the solution runs in its own process, the tests in another), then 200
mixed ones (a failing test, a timeout, a crash, passing tests), all submitted at once to a pool
of SLOTS warm agents (one per core).

    python bench/sandbox_throughput.py                    # every backend that can run here
    python bench/sandbox_throughput.py --backends bwrap --tiny 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthgen.engine.sandbox import Job, Limits, SandboxUnavailable, open_sandbox  # noqa: E402

SLOTS = os.cpu_count() or 2
LIMITS = Limits(wall_s=0.5, cpu_s=1, memory_mb=256)
SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "def test_add():\n" + "".join(f"    assert add({i}, 3) == {i + 3}\n" for i in range(5))


def mixed_jobs(count: int) -> list[Job]:
    kinds = [
        Job.with_tests(SOLUTION, "def test_add():\n    assert add(2, 3) == 5\n", LIMITS),
        Job.with_tests(SOLUTION, "def test_add():\n    assert add(2, 2) == 5\n", LIMITS),
        Job.script("raise ValueError('boom')\n", LIMITS),
        Job.with_tests("def add(a, b) return a\n", "def test_add():\n    assert add(1, 1) == 2\n", LIMITS),
    ]
    jobs = [kinds[i % len(kinds)] for i in range(count)]
    for i in range(0, count, 20):  # one in twenty never ends
        jobs[i] = Job.script("while True:\n    pass\n", LIMITS)
    return jobs


def measure(pool, jobs: list[Job]) -> dict:
    latencies: list[float] = []

    def timed(job: Job):
        started = time.perf_counter()
        result = pool.run(job)
        latencies.append(time.perf_counter() - started)
        return result

    cpu_before = os.times()
    started = time.perf_counter()
    results = list(pool._executor.map(timed, jobs))
    elapsed = time.perf_counter() - started
    cpu_after = os.times()
    latencies.sort()
    return {
        "jobs": len(jobs),
        "per_s": len(jobs) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "host_cpu_ms_per_job": 1000 * (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / len(jobs),
        "statuses": dict(Counter(r.status for r in results)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="bwrap,docker,process")
    parser.add_argument("--tiny", type=int, default=1000)
    parser.add_argument("--tested", type=int, default=500)
    parser.add_argument("--mixed", type=int, default=200)
    args = parser.parse_args()
    print(f"{SLOTS} slots (one per core); tiny = print(1); mixed = pass/fail/crash/syntax error, 5% timeouts at 0.5 s")
    for backend in args.backends.split(","):
        try:
            pool = open_sandbox(backend, slots=SLOTS, ceiling=LIMITS)
            pool.warm_up()
        except SandboxUnavailable as exc:
            print(f"{backend:8} skipped: {exc}")
            continue
        with pool:
            measure(pool, [Job.script("print(1)\n", LIMITS)] * 50)  # warm caches
            for label, jobs in (("tiny", [Job.script("print(1)\n", LIMITS)] * args.tiny),
                                ("tests", [Job.with_tests(SOLUTION, TESTS, LIMITS)] * args.tested),
                                ("mixed", mixed_jobs(args.mixed))):
                figures = measure(pool, jobs)
                print(
                    f"{backend:8} {label:5} {figures['jobs']:5d} jobs  {figures['per_s']:7.1f}/s  "
                    f"p50 {figures['p50_ms']:6.1f} ms  p95 {figures['p95_ms']:6.1f} ms  "
                    f"host CPU {figures['host_cpu_ms_per_job']:.2f} ms/job  {figures['statuses']}"
                )


if __name__ == "__main__":
    main()
