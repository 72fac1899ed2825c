"""`synthgen decontaminate`: standalone decontamination of Parquet/JSONL files, streamed in
batches (bounded memory), into clean and flagged Parquet plus a summary."""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.config.decontamination import known_benchmarks
from synthgen.engine.references import Params, ReferenceSetError, ReferenceIndex
from synthgen.config.errors import UserError
from synthgen.storage.layout import DATA, committed_files, is_run
from synthgen.storage.location import Location

log = logging.getLogger("synthgen")
BATCH_ROWS = 1000
FLAG_COLUMNS = [("contamination_field", pa.string()), ("contamination_benchmark", pa.string()),
                ("contamination_item", pa.string()), ("contamination_method", pa.string()),
                ("contamination_score", pa.float64())]


def decontaminate_files(inputs: list[str | Path], benchmarks: list[str], fields: list[str] | None, out: Path,
                        params: Params = Params()) -> dict:
    """Inputs: Parquet/JSONL files or folders of them, or synthgen runs (their committed records),
    local or on object storage."""
    inputs = [Location.of(path) for path in inputs]
    for path in inputs:
        if not path.exists() and not path.is_dir():
            raise UserError(f"input not found: {path}")
    named = {"humaneval", *known_benchmarks()}
    sources = [name if name in named or name.startswith("hf:") else str(Path(name).resolve()) for name in benchmarks]
    try:
        index = ReferenceIndex.open(sources, params)
    except ReferenceSetError as exc:
        raise UserError(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: Counter[str] = Counter()
    by_benchmark: Counter[str] = Counter()
    started = time.monotonic()
    try:
        for batch in _batches(inputs):
            table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            chosen = fields or [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            missing = [f for f in chosen if f not in table.column_names]
            if missing:
                raise UserError(f"field(s) {', '.join(missing)} not in the input; it has: {', '.join(table.column_names)}")
            flags = _flag(index, table, chosen)
            flagged_mask = pa.array([flag is not None for flag in flags])
            clean = table.filter(pa.compute.invert(flagged_mask))
            flagged = table.filter(flagged_mask)
            hits = [flag for flag in flags if flag is not None]
            for name, kind in FLAG_COLUMNS:
                key = name.removeprefix("contamination_")
                flagged = flagged.append_column(name, pa.array([h[key] for h in hits], type=kind))
            for name, part in (("clean", clean), ("flagged", flagged)):
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out / f"{name}.parquet", part.schema, compression="zstd")
                writers[name].write_table(part)
            counts["rows"] += table.num_rows
            counts["flagged"] += flagged.num_rows
            by_benchmark.update(f"{h['benchmark']}/{h['method']}" for h in hits)
    finally:
        for writer in writers.values():
            writer.close()
    elapsed = time.monotonic() - started
    summary = {
        "inputs": [str(p) for p in inputs], "benchmarks": sources, "rows": counts["rows"], "flagged": counts["flagged"],
        "clean": counts["rows"] - counts["flagged"], "hits": dict(by_benchmark.most_common()),
        "reference_texts": len(index.refs), "elapsed_s": round(elapsed, 3),
        "outputs": {name: str(out / f"{name}.parquet") for name in writers},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _flag(index: ReferenceIndex, table: pa.Table, fields: list[str]) -> list[dict | None]:
    """Per row, its first hit over the chosen fields (each field checked on its own)."""
    texts, owners = [], []
    for field in fields:
        for row, value in enumerate(table.column(field).to_pylist()):
            if isinstance(value, str) and value.strip():
                texts.append(value)
                owners.append((row, field))
    flags: list[dict | None] = [None] * table.num_rows
    for (row, field), hit in zip(owners, index.check(texts)):
        if hit is not None and flags[row] is None:
            flags[row] = {"field": field, "benchmark": hit.benchmark, "item": hit.item_id, "method": hit.method,
                          "score": hit.score}
    return flags


def _input_files(path: Location) -> list[Location]:
    if is_run(path):  # what the run committed, never a part of an unfinished commit
        return committed_files(path, DATA)
    if not path.is_dir():
        return [path]
    if path.is_local:
        return [Location.of(p) for p in sorted(path.local.rglob("*")) if p.suffix in (".parquet", ".jsonl")]
    return [file for file in path.files() if file.name.endswith((".parquet", ".jsonl"))]


def _batches(inputs: list[Location]) -> Iterator[pa.Table | pa.RecordBatch]:
    for path in inputs:
        for file in _input_files(path):
            if file.name.endswith(".parquet"):
                yield from pq.ParquetFile(file.open_input_file()).iter_batches(batch_size=BATCH_ROWS)
            else:
                yield from _jsonl_batches(file)


def _jsonl_batches(file: Location) -> Iterator[pa.Table]:
    rows: list[dict] = []
    with io.TextIOWrapper(file.fs.open_input_stream(file.path), encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{file}:{number}: not JSON ({exc.msg})") from None
            if len(rows) >= BATCH_ROWS:
                yield pa.Table.from_pylist(rows)
                rows = []
    if rows:
        yield pa.Table.from_pylist(rows)
