"""The driver of a run: seeds not yet committed stream through Ray Data into the worker pool,
settled seeds come back and are committed in shards; rerunning the same command resumes."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import platform
import signal
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from synthgen.config.base import EMBEDDED
from synthgen.config.errors import UserError
from synthgen.config.workflow import SeedSource, WorkflowBase
from synthgen.engine.cache import discard_staged
from synthgen.engine.embedded_teacher import EmbeddedTeacher
from synthgen.engine.registry import prepare_validators
from synthgen.engine.teacher import probe
from synthgen.runtime.cluster import alive_nodes, configure_ray_data, one_row_blocks, ray_session
from synthgen.runtime.lifeline import Driver
from synthgen.runtime.ledger import Ledger
from synthgen.runtime.limiter import create_limiter
from synthgen.runtime.progress import Progress
from synthgen.runtime.seed_stream import SeedFiles, check_source
from synthgen.runtime.shared import create_shared_states
from synthgen.runtime.tally import LiveProgress, TallyActor, retire_workers
from synthgen.runtime.worker import WorkflowWorker
from synthgen.runtime.writer import ShardWriter, read_settled_batch
from synthgen.seeds.load import SeedCounts
from synthgen.storage.layout import CACHE, MANIFEST, iter_markers
from synthgen.storage.location import Location
from synthgen.storage.query import RUN_END_MEMORY, connect, summarize

log = logging.getLogger("synthgen")
PIPELINE_ROUNDS = 3


@dataclass
class RunReport:
    out: Location
    status: str  # "done" | "partial"
    summary: dict
    processed: int = 0
    skipped_committed: int = 0
    unsettled: dict[str, str] = field(default_factory=dict)
    message: str = ""
    elapsed_s: float = 0.0


def run(workflow: WorkflowBase, *, source: SeedSource | None = None, curation: SeedCounts | None = None,
        address: str | None = None, progress_interval_s: float = 10.0) -> RunReport:
    """Run or resume `workflow` on its seeds (or on `source`, the plain source a curated one was
    curated into, with `curation` counting the seeds it dropped)."""
    started = time.monotonic()
    out = Location.of(workflow.output.dir or "out")
    source = source or workflow.seeds
    sizes, estimate = check_source(source)
    out.make_dirs()
    committed = _committed_seeds(out, workflow)
    writer = ShardWriter(out, workflow.field_names, workflow.output.shard_rows, workflow.workflow_hash,
                         optional=workflow.record_columns)
    report = RunReport(out=out, status="done", summary={})
    with contextlib.ExitStack() as stack:
        workflow = _with_live_teachers(workflow, out, stack)
        api_keys = {name: key for name, t in workflow.teachers.items() if (key := os.environ.get(t.api_key_env))}
        for name, teacher in workflow.teachers.items():
            probe(name, teacher, api_keys.get(name))
        prepare_validators(workflow)
        stack.enter_context(ray_session(address))
        if committed:
            log.info("resuming: %d seeds already committed in %s", committed, out)
        estimate = max(0, estimate - committed)  # the source's seeds less those committed, about
        seeds = _stream_until_settled(workflow, source, sizes, estimate, api_keys, writer, out, report, progress_interval_s)
        if out.is_local:
            discard_staged(out.local / CACHE)  # writes of workers killed mid-run; the pool is gone now
    if seeds is not None:
        seeds.add(curation or SeedCounts())
        seeds.log_skipped()
    report.elapsed_s = time.monotonic() - started
    report.summary = summarize(connect(out, RUN_END_MEMORY))
    _add_costs(report.summary, workflow)
    if report.unsettled and report.status == "done":
        report.status = "partial"
        first_error = next(iter(report.unsettled.values()))
        report.message = f"{len(report.unsettled)} seeds could not reach the teacher ({first_error}); rerun to resume"
    write_manifest(out, workflow, seeds, report)
    return report


def _add_costs(summary: dict, workflow: WorkflowBase) -> None:
    """Cost of the tokens actually paid for (cache hits are free), where a price is configured."""
    for row in summary["teachers"]:
        teacher = workflow.teachers.get(row["teacher"])
        cost = teacher.cost_usd(row["paid_tokens_in"], row["paid_tokens_out"]) if teacher else None
        if cost is not None:
            row["cost_usd"] = round(cost, 6)
    costs = [row["cost_usd"] for row in summary["teachers"] if "cost_usd" in row]
    summary["cost_usd"] = round(sum(costs), 6) if costs else None


def _committed_seeds(out: Location, workflow: WorkflowBase) -> int:
    """How many seeds `out` holds committed; a run directory of another workflow is refused."""
    hashes, committed = set(), 0
    for marker in iter_markers(out):
        hashes.add(marker.get("workflow_hash"))
        committed += len(marker["seed_ids"])
    hashes.discard(None)
    if hashes and hashes != {workflow.workflow_hash}:
        raise UserError(
            f"{out} holds shards of another version of workflow '{workflow.name}' "
            f"(hash {', '.join(sorted(hashes))}, now {workflow.workflow_hash}): use another --out, or delete it to start over"
        )
    return committed


def _with_live_teachers(workflow: WorkflowBase, out: Location, stack: contextlib.ExitStack) -> WorkflowBase:
    """A copy of the workflow whose `embedded` teachers point at a freshly started local server."""
    if all(t.base_url != EMBEDDED for t in workflow.teachers.values()):
        return workflow
    workflow = workflow.model_copy(deep=True)
    logs = out.local if out.is_local else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="synthgen-")))
    server = stack.enter_context(EmbeddedTeacher(logs / "teacher.log"))
    for teacher in workflow.teachers.values():
        if teacher.base_url == EMBEDDED:
            teacher.base_url = server.url
    return workflow


@contextlib.contextmanager
def _sigterm_as_interrupt():
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stream_until_settled(workflow, source: SeedSource, sizes: dict[Path, int], estimate: int, api_keys,
                          writer: ShardWriter, out: Location, report: RunReport, interval_s: float) -> SeedCounts | None:
    """Stream the source's seeds not yet committed; when the pipeline fails (a worker process
    died: Ray Data stops the whole dataset on a lost task, and actor restarts are off, see
    below), stream again, as long as each round settles some. Return what reading the source
    came to, or None when no round read all of it."""
    for round_number in range(PIPELINE_ROUNDS):
        # The ledger's shards spread over the cluster with the ids they hold: one per node.
        ledger = Ledger.start(out.uri, shards=alive_nodes())
        settled_before = report.processed
        try:
            left = max(0, estimate - writer.committed_seeds)
            exhausted, pipeline_failed = _stream(workflow, source, sizes, left, ledger, api_keys, writer, out, report, interval_s)
            _, seeds = ledger.totals()
        finally:
            ledger.close()
        if round_number == 0:
            report.skipped_committed = seeds.committed
        if not pipeline_failed or report.processed == settled_before or round_number == PIPELINE_ROUNDS - 1:
            return seeds if exhausted else None
        log.warning("%s; streaming the seeds it left again", report.message.split(";")[0])
        report.status, report.message = "done", ""
    return None


def _stream(workflow, source: SeedSource, sizes: dict[Path, int], estimate: int, ledger: Ledger, api_keys,
            writer: ShardWriter, out: Location, report: RunReport, interval_s: float) -> tuple[bool, bool]:
    """Stream the seeds the ledger calls new (about `estimate`) through the worker pool; return
    whether the stream ran to its end and whether the Ray pipeline itself failed. The ledger
    loads the committed ids while the pool starts: the first claim waits for it, not the driver."""
    import ray

    batch_api = any(t.mode == "batch" for t in workflow.teachers.values())
    configure_ray_data(whole_pool_first=batch_api or alive_nodes() > 1)
    max_in_flight = max(t.max_in_flight for t in workflow.teachers.values())
    batch = workflow.runtime.batch_size(max_in_flight)
    batches = max(1, math.ceil(estimate / batch))
    workers = min(workflow.runtime.workers or max(1, int(ray.cluster_resources().get("CPU", 1))), batches)
    # Each block is one batch; an actor runs this many at once on its event loop so that the
    # teachers' max_in_flight can be filled (a seed makes its requests one step after another),
    # plus one, so that a batch waiting for its slowest seed never leaves the teacher idle.
    calls = max(1, math.ceil(max_in_flight / batch)) + 1
    # Queue a second round of tasks on each actor so that it never waits for the next one, but
    # never more than its share: Ray Data fills the first ready actor, and a small run would
    # otherwise land on one node of a cluster.
    queued = max(1, min(2 * calls, math.ceil(batches / workers)))
    limiter = create_limiter(workflow.teachers)
    tally = TallyActor.remote()
    shared_states = create_shared_states(workflow, out)
    # Read tasks take no CPU slot: the worker pool holds every slot, and reading is a small
    # share of a seed's work. How many files are read at once: as many as there are workers.
    seed_files = SeedFiles(source, sizes, ledger, batch, readers=workers)
    # No actor restarts (a dead worker's seeds are streamed again by `_stream_until_settled`,
    # tested): with them allowed, Ray logs an error line on every run, because Ray Data keeps every actor's
    # constructor arguments in the object store (ray-project/ray#57733). `max_restarts=0` is the
    # switch Ray Data's own code documents; it goes through `**ray_remote_args`, deprecated since
    # Ray 2.60 with no named replacement yet, hence the filter (and the <2.64 pin).
    with warnings.catch_warnings(), one_row_blocks():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        dataset = ray.data.read_datasource(seed_files, num_cpus=0, override_num_blocks=len(seed_files.groups))
        dataset = dataset.map_batches(
            WorkflowWorker,
            fn_constructor_kwargs={
                "workflow": workflow, "api_keys": api_keys, "cache_dir": (out / CACHE).uri, "limiter": limiter,
                "tally": tally, "shared_states": shared_states, "driver": Driver.this_process(tally),
            },
            batch_size=1,  # one row: a batch of seeds
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(
                size=workers, max_concurrent_calls_per_actor=min(calls, queued), max_tasks_in_flight_per_actor=queued
            ),
            num_cpus=1,
            max_restarts=0,
        )
    progress = Progress(total=estimate, interval_s=interval_s, steps=workflow.field_names)
    log.info("%s: about %d seeds to read, %d workers; output %s", workflow.name, estimate, workers, out)
    # No prefetching: results are small and the next one is awaited anyway, and a prefetch
    # thread still fetching after `ray.shutdown` (an interrupted run) makes the core worker end
    # the whole process before the summary is out.
    threads_before = set(threading.enumerate())
    blocks = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0))
    down_after_s = min(t.down_after_s for t in workflow.teachers.values())
    last_settled = time.monotonic()
    exhausted = pipeline_failed = False
    try:
        with _sigterm_as_interrupt(), LiveProgress(tally, progress, interval_s):
            for block in blocks:
                for row in block.to_pylist():
                    seeds, records, rejects = read_settled_batch(row)
                    for seed in seeds:
                        progress.update(seed["counts"])
                        if seed["settled"]:
                            last_settled = time.monotonic()
                        else:
                            report.unsettled[seed["seed_id"]] = seed["error"]
                    writer.add_settled(seeds, records, rejects, ledger.settle)
                if writer.should_commit(workflow.output.commit_interval_s):
                    writer.commit()
                progress.maybe_log()
                if report.unsettled and time.monotonic() - last_settled > down_after_s:
                    report.status = "partial"
                    report.message = (
                        f"stopped: no seed got through for {down_after_s:.0f}s, the teacher is down "
                        f"({next(reversed(report.unsettled.values()))}). Finished seeds are committed; "
                        "run the same command again to resume."
                    )
                    break
            else:
                exhausted = True
    except KeyboardInterrupt:
        report.status = "partial"
        report.message = "interrupted; finished seeds are committed. Run the same command again to resume."
    except ray.exceptions.RayError as exc:
        report.status = "partial"
        report.message = f"the Ray pipeline failed ({str(exc).splitlines()[0][:300]}); committed work is kept, rerun to resume"
        pipeline_failed = True
    finally:
        # Stop Ray Data's executor before Ray shuts down (same reason as above).
        blocks.close()
        if not exhausted:
            _join_stream_threads(threads_before)
        if pipeline_failed:  # another round follows, and needs the CPU slots
            retire_workers(tally)
        writer.commit()
        report.processed += progress.done
        progress.log()
    return exhausted, pipeline_failed


def _join_stream_threads(before: set[threading.Thread], timeout_s: float = 2.0) -> None:
    """Give the threads Ray Data started to read the stream a moment to leave their Ray calls:
    after an interrupt one can still be inside one, and a Ray call after `ray.shutdown` ends the
    process before the summary is out. (Threads parked with nothing to do just run out the clock.)"""
    gc.collect()  # Ray Data stops its block prefetcher when the closed iterator is collected
    deadline = time.monotonic() + timeout_s
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("synthgen", "ray", "openai", "pyarrow", "duckdb", "pydantic"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def write_manifest(out: Location, workflow: WorkflowBase, seeds: SeedCounts | None, report: RunReport) -> None:
    """The run's manifest. How many seeds the source holds is known when a round read all of
    it (an interrupted run says null)."""
    summary = report.summary
    manifest = {
        "workflow": workflow.name,
        "workflow_hash": workflow.workflow_hash,
        "status": report.status,
        "config": workflow.model_dump(mode="json"),
        "versions": _versions(),
        "seeds": {
            "input": seeds.kept if seeds else None,
            "duplicates_dropped": seeds.duplicates if seeds else None,
            "unreadable": seeds.skipped if seeds else None,
            "settled": summary["seeds"],
            "pending": seeds.kept - summary["seeds"] if seeds else None,
        },
        "counts": {"records": summary["records"], "rejects": summary["rejects"]},
        "tokens": {"in": summary["tokens_in"], "out": summary["tokens_out"]},
        "teacher": {
            "requests": summary["requests"],
            "cache_hits": summary["cache_hits"],
            "cost_usd": summary["cost_usd"],
            "per_teacher": summary["teachers"],
            "steps": summary["steps"],
        },
        "validators": summary["validators"],
        "contamination": summary["contamination"],
        "judges": summary["judges"],
        "rejects_by_reason": summary["rejects_by_reason"],
        "shards": [
            {k: marker[k] for k in ("part", "records", "rejects", "files", "committed_at")} | {"seeds": len(marker["seed_ids"])}
            for marker in iter_markers(out)
        ],
        "last_run": {
            "processed": report.processed,
            "already_committed": report.skipped_committed,
            "unsettled": len(report.unsettled),
            "elapsed_s": round(report.elapsed_s, 2),
            "message": report.message,
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
