"""How a run grows with its seeds: one-request seeds against a fast scripted endpoint, each size a
fresh `synthgen run` (its own local Ray instance), reporting wall time, requests/s, the driver's
peak RSS, the largest worker's and the peak of all the run's processes together (driver, Ray's
own processes and workers; sampled every 0.2 s).

    python bench/scale.py                          # 10k and 100k seeds
    python bench/scale.py --sizes 20000,1000000    # the issue's comparison (1M takes minutes)
    python bench/scale.py --sizes 1000000 --kill-at 0.5
        # ... and a run of the last size killed with SIGKILL once half its seeds are committed,
        # then resumed: the teacher requests the resume sends against the seeds not committed,
        # and the seeds written twice (must be 0)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import duckdb

from one_request import one_request_workflow

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB / 1024
    except (OSError, IndexError, ValueError):
        return 0.0


def run_processes(driver: int, marker: str) -> dict[int, str]:
    """The driver and every process started under this run's RAY_TMPDIR (Ray rewrites its
    workers' command lines, not their environment)."""
    found = {driver: "driver"}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == driver:
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = "worker" if "MapWorker" in command or "default_worker" in command else "ray"
    return found


class Sampler(threading.Thread):
    def __init__(self, driver: int, marker: str):
        super().__init__(daemon=True)
        self.driver, self.marker = driver, marker
        self.peak_driver = self.peak_worker = self.peak_all = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            processes = run_processes(self.driver, self.marker)
            sizes = {pid: rss_mb(pid) for pid in processes}
            self.peak_driver = max(self.peak_driver, sizes.get(self.driver, 0.0))
            workers = [size for pid, size in sizes.items() if processes[pid] == "worker"]
            self.peak_worker = max([self.peak_worker, *workers])
            self.peak_all = max(self.peak_all, sum(sizes.values()))


def one_size(seeds: int, url: str, work: Path, kill_at: float | None = None) -> dict:
    """Run `seeds` one-request seeds; with `kill_at`, SIGKILL the run once that share of them is
    committed (the figures are then the resumed run's)."""
    source = work / f"seeds-{seeds}.jsonl"
    with source.open("w") as handle:
        for i in range(seeds):
            handle.write(json.dumps({"text": f"Scale prompt number {i} about a topic."}) + "\n")
    workflow = one_request_workflow(work / "scale.yaml", source, url, max_in_flight=256, max_tokens=16, shard_rows=20000)
    out = work / f"out-{seeds}{'-killed' if kill_at else ''}"
    result: dict = {"seeds": seeds}
    if kill_at:
        result |= _killed(seeds, workflow, out, work, url, kill_at)
    ray_dir = work / f"ray-{seeds}"
    env = {**os.environ, "RAY_TMPDIR": str(ray_dir)}  # a fresh instance, never a kept one
    requests_before = _teacher_requests(url)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "synthgen", "run", str(workflow), "--out", str(out)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(process.pid, f"RAY_TMPDIR={ray_dir}\0")
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"run of {seeds} seeds failed:\n{stderr[-2000:]}")
    result |= {"wall_s": round(wall, 1), "req_per_s": round(seeds / wall, 1),
               "driver_peak_mb": round(sampler.peak_driver), "worker_peak_mb": round(sampler.peak_worker),
               "all_peak_mb": round(sampler.peak_all), "requests": _teacher_requests(url) - requests_before}
    [(rows, distinct)] = duckdb.sql(f"SELECT count(*), count(DISTINCT seed_id) FROM read_parquet('{out}/data/*.parquet')").fetchall()
    result |= {"rows": rows, "written_twice": rows - distinct}
    return result


def _killed(seeds: int, workflow: Path, out: Path, work: Path, url: str, kill_at: float) -> dict:
    env = {**os.environ, "RAY_TMPDIR": str(work / f"ray-{seeds}-killed")}
    process = subprocess.Popen([sys.executable, "-m", "synthgen", "run", str(workflow), "--out", str(out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while _committed(out) < kill_at * seeds:
        if process.poll() is not None:
            raise SystemExit("the run ended before it could be killed")
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(5)  # the killed run's workers stop on their own (their driver is gone)
    return {"committed_at_kill": _committed(out)}


def _committed(out: Path) -> int:
    total = 0
    for marker in (out / "_commits").glob("part-*.json"):
        try:
            total += len(json.loads(marker.read_text())["seed_ids"])
        except (OSError, ValueError):
            continue
    return total


def _teacher_requests(url: str) -> int:
    with urllib.request.urlopen(url.rstrip("/") + "/stats") as response:
        return json.loads(response.read())["requests"]


def _line(r: dict) -> None:
    print(f"{r['seeds']:>9} {r['wall_s']:>8} {r['req_per_s']:>8} {r['driver_peak_mb']:>10} {r['worker_peak_mb']:>10} "
          f"{r['all_peak_mb']:>8} {r['requests']:>9} {r['written_twice']:>6}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--kill-at", type=float, help="also run the last size killed at this committed share, then resumed")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "synthgen.scripted_teacher"], stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    try:
        with tempfile.TemporaryDirectory(prefix="sg-scale-") as tmp:
            print(f"{'seeds':>9} {'wall s':>8} {'req/s':>8} {'driver MB':>10} {'worker MB':>10} {'all MB':>8} "
                  f"{'requests':>9} {'twice':>6}")
            sizes = [int(v) for v in args.sizes.split(",")]
            for size in sizes:
                _line(one_size(size, url, Path(tmp)))
            if args.kill_at:
                r = one_size(sizes[-1], url, Path(tmp), kill_at=args.kill_at)
                print(f"killed at {r['committed_at_kill']} committed seeds; the resume below sent {r['requests']} requests "
                      f"for {r['seeds'] - r['committed_at_kill']} seeds not committed (its driver and memory figures):")
                _line(r)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
