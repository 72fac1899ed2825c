"""Teacher throughput through the whole `synthgen run` (Ray, workers, cache, shards) against a fake
OpenAI-compatible endpoint with a fixed latency and unlimited concurrency.

Prints, per (requests, in-flight): requests/s inside the request window (first request in to last
response out) against the ideal (in-flight / latency) and against the bound of a finite run (the
last round of requests takes a whole latency however few they are), the whole-run wall time and
the time to the first request (start-up), the CPU time synthgen spent per request (machine CPU
during the run minus the fake server's), and requests in flight at each tenth of the window.

    python bench/teacher_throughput.py                      # 2,000 and 20,000 requests at 64/256/1024
    python bench/teacher_throughput.py --requests 2000 --in-flight 256
    python bench/teacher_throughput.py --baseline           # also a plain AsyncOpenAI loop and a bare HTTP loop
    python bench/teacher_throughput.py --kept               # runs join a local Ray kept by `synthgen ray start`
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from one_request import one_request_workflow

LATENCY_S = 0.2
WORKERS = 2
TICKS = os.sysconf("SC_CLK_TCK")
# The reference point: what most generators do, the openai client's typed call behind a semaphore.
PLAIN_LOOP = """
import asyncio, sys, openai
async def main(url, requests, in_flight):
    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    gate = asyncio.Semaphore(in_flight)
    async def one(i):
        async with gate:
            await client.chat.completions.create(model="fake", max_tokens=64, messages=[
                {"role": "user", "content": f"Benchmark prompt number {i} about a topic."}])
    await asyncio.gather(*(one(i) for i in range(requests)))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""
# The ceiling of a Python client on this machine: raw aiohttp posts, no types, nothing kept.
BARE_LOOP = """
import asyncio, sys, aiohttp
async def main(url, requests, in_flight):
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i):
            async with gate:
                async with session.post(url + "/chat/completions", json={"model": "fake", "max_tokens": 64, "messages": [
                        {"role": "user", "content": f"Benchmark prompt number {i} about a topic."}]}) as response:
                    await response.json()
        await asyncio.gather(*(one(i) for i in range(requests)))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""
BASELINES = {"plain loop": PLAIN_LOOP, "bare http": BARE_LOOP}


def busy_ticks() -> int:
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in Path("/proc/stat").read_text().split()[1:8])
    return user + nice + system + irq + softirq  # not idle, iowait, or time stolen by the host


def process_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def one_run(requests: int, in_flight: int, work: Path, baseline: str | None = None, kept: bool = False) -> dict | None:
    seeds = work / f"seeds-{requests}.jsonl"
    if not seeds.exists():
        seeds.write_text("".join(json.dumps({"text": f"Benchmark prompt number {i} about a topic."}) + "\n"
                                 for i in range(requests)))
    server = subprocess.Popen([sys.executable, "-m", "synthgen.scripted_teacher", "--latency", str(LATENCY_S)],
                              stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    per_worker = max(1, in_flight // WORKERS)
    workflow = one_request_workflow(work / "bench.yaml", seeds, url, max_in_flight=per_worker, max_tokens=64,
                                    shard_rows=5000, workers=WORKERS)
    out = work / f"out-{requests}-{in_flight}"
    command = [sys.executable, "-c", BASELINES[baseline], url, str(requests), str(in_flight)] if baseline else \
        [sys.executable, "-m", "synthgen", "run", str(workflow), "--out", str(out)]
    busy_before, server_before = busy_ticks(), process_ticks(server.pid)
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - started
    busy, server_cpu = busy_ticks() - busy_before, process_ticks(server.pid) - server_before
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/v1/stats") as response:
        stats = json.load(response)
    server.terminate()
    server.wait()
    if result.returncode != 0:
        if not baseline:
            raise SystemExit(f"run failed: {result.stderr[-2000:]}")
        # The loops have no retries: at high concurrency they can fail where synthgen does not.
        print(f"{baseline} failed at {requests} requests, {in_flight} in flight: {result.stderr.strip().splitlines()[-1]}")
        return None
    ideal = in_flight / LATENCY_S
    rate = stats["requests"] / stats["window_s"] if stats["window_s"] else 0.0
    return {
        "client": baseline or ("synthgen+kept" if kept else "synthgen"),
        "requests": stats["requests"],
        "in_flight": in_flight,
        "server_max_in_flight": stats["max_in_flight"],
        "in_flight_profile": stats["in_flight_profile"],
        "req_per_s": round(rate, 1),
        "ideal_req_per_s": round(ideal, 1),
        "of_ideal": round(rate / ideal, 3),
        # What a client with this many in flight can reach over a finite run: every slot busy
        # from the first request, and the last round of requests as long as any other.
        "of_bound": round(rate * math.ceil(requests / in_flight) * LATENCY_S / requests, 3),
        "wall_s": round(wall, 1),
        "first_request_s": round(stats["first_at"] - started, 2),  # start-up: command to first request
        "synthgen_cpu_s": (busy - server_cpu) / TICKS,
        "synthgen_cpu_ms_per_request": round((busy - server_cpu) / TICKS * 1000 / stats["requests"], 2),
        "server_cpu_ms_per_request": round(server_cpu / TICKS * 1000 / stats["requests"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", default="2000,20000")
    parser.add_argument("--in-flight", default="64,256,1024")
    parser.add_argument("--baseline", action="store_true", help="also run a plain AsyncOpenAI loop and a bare aiohttp loop, each behind a semaphore")
    parser.add_argument("--kept", action="store_true", help="synthgen runs join a local Ray instance kept running (`synthgen ray start`)")
    args = parser.parse_args()
    if args.kept:
        subprocess.run([sys.executable, "-m", "synthgen", "ray", "start"], check=True, capture_output=True)
    try:
        measure(args)
    finally:
        if args.kept:
            subprocess.run([sys.executable, "-m", "synthgen", "ray", "stop"], check=True, capture_output=True)


def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        work = Path(tmp)
        print(f"fake endpoint latency {LATENCY_S * 1000:.0f} ms, {WORKERS} Ray workers, {os.cpu_count()} cores")
        header = f"{'client':>13} {'requests':>8} {'in-flight':>9} {'req/s':>8} {'ideal':>7} {'of ideal':>8} {'of bound':>8} {'wall s':>7} " \
                 f"{'first req s':>11} {'cpu ms/req':>10} {'server ms/req':>13} {'peak in flight':>14}"
        print(header)
        runs: dict[int, list[dict]] = {}
        for requests in (int(v) for v in args.requests.split(",")):
            for in_flight in (int(v) for v in args.in_flight.split(",")):
                ours = one_run(requests, in_flight, work, kept=args.kept)
                runs.setdefault(in_flight, []).append(ours)
                baselines = [one_run(requests, in_flight, work, baseline=name) for name in BASELINES] if args.baseline else []
                for r in [ours, *(b for b in baselines if b)]:
                    print(f"{r['client']:>13} {r['requests']:>8} {r['in_flight']:>9} {r['req_per_s']:>8} "
                          f"{r['ideal_req_per_s']:>7} {r['of_ideal']:>8} {r['of_bound']:>8} {r['wall_s']:>7} {r['first_request_s']:>11} "
                          f"{r['synthgen_cpu_ms_per_request']:>10} {r['server_cpu_ms_per_request']:>13} "
                          f"{r['server_max_in_flight']:>14}", flush=True)
                    print(f"{'':>13} in flight at each tenth of the window: {r['in_flight_profile']}")
        # Whole-run CPU includes starting Ray and its actors, a fixed cost; the difference between
        # two run sizes is what each further request costs.
        for in_flight, sized in runs.items():
            if len(sized) >= 2:
                small, large = min(sized, key=lambda r: r["requests"]), max(sized, key=lambda r: r["requests"])
                marginal = (large["synthgen_cpu_s"] - small["synthgen_cpu_s"]) / (large["requests"] - small["requests"])
                fixed = small["synthgen_cpu_s"] - marginal * small["requests"]
                print(f"in-flight {in_flight}: {marginal * 1000:.2f} ms CPU per further request, "
                      f"{fixed:.1f} s fixed (Ray start-up and shut-down)")


if __name__ == "__main__":
    main()
