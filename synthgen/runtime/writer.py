"""Shard writer with exactly-once commits at seed granularity, on a local folder or an object
store (which has no rename).

A commit writes its Parquet parts whole under names no other writer uses
(`data/part-N-WRITER.parquet`, `rejects/…`), then the commit marker `_commits/part-N.json`, the
commit point, listing the seed ids it covers and its parts. Readers honour only parts a marker
lists; opening a run directory deletes parts no marker lists (a writer died between its parts
and its marker). So a crash at any instant leaves each seed either wholly committed or not at
all, and no reader ever sees a row twice."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthgen.engine.records import SeedResult
from synthgen.storage.layout import COMMITS, DATA, REJECTS, committed_seed_ids, iter_markers, record_schema, shard_row
from synthgen.storage.location import Location

log = logging.getLogger(__name__)

DATA_COLUMN = "records"  # the batch column holding what lands in DATA


def settled_batch(results: list[SeedResult], field_names: list[str], optional: tuple[str, ...] = ()) -> pa.Table:
    """A batch of seed results as a worker hands it back: one row holding the seeds' ids, states
    and progress counts (JSON) and their records and rejects as Arrow IPC streams in the shard
    schema. Rows are built where the records were made and cross Ray as two buffers, so the
    driver commits columns and never re-reads a record."""
    seeds = [{"seed_id": r.seed_id, "settled": r.settled, "error": r.error, "counts": r.counts()} for r in results]
    streams = {}
    for column, is_reject in ((DATA_COLUMN, False), (REJECTS, True)):
        rows = [shard_row(item, field_names, optional) for result in results for item in getattr(result, column)]
        table = pa.Table.from_pylist(rows, schema=record_schema(field_names, is_reject, optional))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        streams[column] = [sink.getvalue().to_pybytes()]
    return pa.table({"seeds": [json.dumps(seeds)], **streams})


def read_settled_batch(row: dict) -> tuple[list[dict], pa.Table, pa.Table]:
    """The seeds, records and rejects of one `settled_batch` row."""
    records, rejects = (pa.ipc.open_stream(row[column]).read_all() for column in (DATA_COLUMN, REJECTS))
    return json.loads(row["seeds"]), records, rejects


class ShardWriter:
    def __init__(self, out_dir: str | Path | Location, field_names: list[str], shard_rows: int, workflow_hash: str,
                 optional: tuple[str, ...] = ()):
        self.out = Location.of(out_dir)
        self.optional = optional
        self.workflow_hash = workflow_hash
        self.field_names = field_names
        self.shard_rows = shard_rows
        for sub in (COMMITS, DATA, REJECTS):
            (self.out / sub).make_dirs()
        recover(self.out)
        self._writer = uuid.uuid4().hex[:8]
        self._settled_here: set[str] = set()  # `settle` of a writer used without a run's ledger
        self._next = _next_part_number(self.out)
        self._records: list[pa.Table] = []
        self._rejects: list[pa.Table] = []
        self._rows = 0
        self._seed_ids: list[str] = []
        self.committed_seeds = 0  # by this writer
        self.last_commit = time.monotonic()

    def add(self, result: SeedResult) -> None:
        self.add_settled(*read_settled_batch(settled_batch([result], self.field_names, self.optional).to_pylist()[0]))

    def add_settled(self, seeds: list[dict], records: pa.Table, rejects: pa.Table,
                    settle: Callable[[list[str]], set[str]] | None = None) -> None:
        """Buffer the settled seeds of one `settled_batch`; each seed's records and rejects go
        into the same commit. `settle` (the run's ledger) marks seed ids settled and returns
        those that were not: a seed already committed or buffered (a Ray task run twice may hand
        one back again) is skipped with its rows."""
        settled = list(dict.fromkeys(s["seed_id"] for s in seeds if s["settled"]))
        fresh = (settle or self._settle_here)(settled) if settled else set()
        new = [seed_id for seed_id in settled if seed_id in fresh]
        if len(new) < len(seeds):
            wanted = pa.array(new, pa.string())
            records, rejects = (t.filter(pc.is_in(t.column("seed_id"), wanted)) for t in (records, rejects))
        # Seeds and their rows enter the buffer together: a commit must never list a seed whose
        # rows it does not hold.
        with _signals_deferred():
            self._records.append(records)
            self._rejects.append(rejects)
            self._rows += records.num_rows + rejects.num_rows
            self._seed_ids.extend(new)

    def _settle_here(self, seed_ids: list[str]) -> set[str]:
        if not self._settled_here:
            self._settled_here = {seed_id for ids in committed_seed_ids(self.out) for seed_id in ids}
        fresh = set(seed_ids) - self._settled_here
        self._settled_here |= fresh
        return fresh

    def should_commit(self, interval_s: float) -> bool:
        rows = self._rows
        return rows >= self.shard_rows or (rows > 0 and time.monotonic() - self.last_commit >= interval_s)

    def commit(self) -> str | None:
        """Commit the buffered seeds as one shard pair. Ctrl-C/SIGTERM wait until it is done:
        a commit cut between its marker and the buffer reset would commit the seeds twice."""
        if not self._seed_ids:
            return None
        with _signals_deferred():
            return self._commit()

    def _commit(self) -> str:
        part = f"part-{self._next:06d}"
        self._next += 1
        files: dict[str, str | None] = {}
        counts: dict[str, int] = {}
        for sub, buffered in ((DATA, self._records), (REJECTS, self._rejects)):
            table = pa.concat_tables(buffered) if buffered else None
            counts[sub] = table.num_rows if table is not None else 0
            files[sub] = f"{sub}/{part}-{self._writer}.parquet" if counts[sub] else None
            if counts[sub]:
                sink = pa.BufferOutputStream()
                pq.write_table(table, sink, compression="zstd", row_group_size=min(counts[sub], 4096))
                (self.out / files[sub]).write_bytes(sink.getvalue().to_pybytes())
        marker = {
            "part": part,
            "workflow_hash": self.workflow_hash,
            "seed_ids": self._seed_ids,
            "records": counts[DATA],
            "rejects": counts[REJECTS],
            "files": files,
            "committed_at": time.time(),
        }
        (self.out / COMMITS / f"{part}.json").write_text(json.dumps(marker))
        log.debug("committed %s: %d seeds, %d records, %d rejects", part, len(self._seed_ids), marker["records"], marker["rejects"])
        self.committed_seeds += len(self._seed_ids)
        self._records, self._rejects, self._rows, self._seed_ids = [], [], 0, []
        self.last_commit = time.monotonic()
        return part


@contextlib.contextmanager
def _signals_deferred():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _frame: caught.append(number)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            raise KeyboardInterrupt


def recover(out: str | Path | Location) -> None:
    """Delete the parts no commit marker lists, and files a writer killed mid-write left; only
    while no other writer works in `out`."""
    out = Location.of(out)
    listed = {name for marker in iter_markers(out) for name in marker["files"].values() if name}
    for file in out.files(".tmp"):  # the manifest's, of a run killed while writing it
        file.delete()
    for sub in (DATA, REJECTS, COMMITS):
        for file in (out / sub).files():
            if f"{sub}/{file.name}" not in listed and (sub != COMMITS or not file.name.startswith("part-")):
                log.info("removing uncommitted %s", file)
                file.delete()


def _next_part_number(out: Location) -> int:
    numbers = [int(marker.name.split("-")[1].split(".")[0]) for marker in (out / COMMITS).files(".json")
               if marker.name.startswith("part-")]
    return max(numbers, default=0) + 1
