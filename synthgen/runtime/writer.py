"""Shard writer with exactly-once commits at seed granularity.

A commit writes `data/.part-N.parquet.tmp` and `rejects/.part-N.parquet.tmp`, then the commit
marker `_commits/part-N.json` (atomic rename: the commit point) listing the seed ids it covers,
then renames the shards to their final names. Opening a run directory rolls forward every shard
whose marker exists and deletes every temp file that has none, so a crash at any instant leaves
each seed either wholly committed or not at all, and the final names only ever hold committed
rows."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthgen.engine.records import SeedResult
from synthgen.storage.layout import COMMITS, DATA, REJECTS, committed_seed_ids, iter_markers, record_schema, shard_row

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


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardWriter:
    def __init__(self, out_dir: str | Path, field_names: list[str], shard_rows: int, workflow_hash: str,
                 optional: tuple[str, ...] = ()):
        self.out = Path(out_dir)
        self.optional = optional
        self.workflow_hash = workflow_hash
        self.field_names = field_names
        self.shard_rows = shard_rows
        for sub in (COMMITS, DATA, REJECTS):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        recover(self.out)
        self._settled_here: set[str] = set()  # `settle` of a writer used without a run's ledger
        self._next = _next_part_number(self.out)
        self._records: list[pa.Table] = []
        self._rejects: list[pa.Table] = []
        self._rows = 0
        self._seed_ids: list[str] = []
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
            if not counts[sub]:
                files[sub] = None
                continue
            temp = self.out / sub / f".{part}.parquet.tmp"
            pq.write_table(table, temp, compression="zstd", row_group_size=min(counts[sub], 4096))
            _fsync(temp)
            files[sub] = f"{sub}/{part}.parquet"
        marker = {
            "part": part,
            "workflow_hash": self.workflow_hash,
            "seed_ids": self._seed_ids,
            "records": counts[DATA],
            "rejects": counts[REJECTS],
            "files": files,
            "committed_at": time.time(),
        }
        temp_marker = self.out / COMMITS / f".{part}.json.tmp"
        temp_marker.write_text(json.dumps(marker))
        _fsync(temp_marker)
        os.replace(temp_marker, self.out / COMMITS / f"{part}.json")
        _publish(self.out, marker)
        _fsync(self.out / COMMITS)
        log.debug("committed %s: %d seeds, %d records, %d rejects", part, len(self._seed_ids), marker["records"], marker["rejects"])
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


def _publish(out: Path, marker: dict) -> None:
    for relative in marker["files"].values():
        if relative is None:
            continue
        final = out / relative
        temp = final.with_name(f".{final.name}.tmp")
        if temp.exists():
            os.replace(temp, final)


def recover(out: Path) -> None:
    """Finish interrupted commits, drop uncommitted temp files."""
    for marker in iter_markers(out):
        _publish(out, marker)
    for sub in (DATA, REJECTS, COMMITS):
        for temp in (out / sub).glob(".*.tmp"):
            log.info("removing uncommitted %s", temp)
            temp.unlink()


def _next_part_number(out: Path) -> int:
    numbers = [int(p.stem.split("-")[1]) for p in (out / COMMITS).glob("part-*.json")]
    return max(numbers, default=0) + 1
