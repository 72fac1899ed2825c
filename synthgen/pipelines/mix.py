"""`synthgen mix`: a weighted, deterministic training mixture from several sources.

1. Stage: each source is streamed through DuckDB (its filter applied there), normalised to the
   output format, token-counted, and written to a staging Parquet with a per-row shuffle key
   derived from (seed, source, row). Batches only: memory does not grow with the input.
2. Quotas: each source's share of the total (in tokens or rows); without a total, the largest
   one every source can give within its caps and up-sampling limit. Impossible weights are an
   error that says which source falls short and by how much.
3. Select and shuffle in DuckDB (memory-limited, spilling to disk): within a source, whole
   passes in shuffled order until its quota is met, so a repeated row appears floor or ceil
   times; then one global order by key, written as shards of `shard_rows`.
Same recipe and inputs give byte-identical shards."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.engine.shingles import mix64
from synthgen.config.errors import UserError
from synthgen.config.recipe import Columns, Recipe, Source
from synthgen.engine.tokens import counter
from synthgen.storage.layout import DATA, MANIFEST, committed_files, is_run
from synthgen.storage.location import Location
from synthgen.storage.query import attach_parquet

log = logging.getLogger("synthgen")
BATCH_ROWS = 2000
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
PAYLOAD = {
    "messages": [("messages", pa.list_(MESSAGE))],
    "text": [("text", pa.string())],
    "prompt_completion": [("prompt", pa.list_(MESSAGE)), ("completion", pa.list_(MESSAGE))],
    "preference": [("prompt", pa.list_(MESSAGE)), ("chosen", pa.list_(MESSAGE)), ("rejected", pa.list_(MESSAGE)),
                   ("score_chosen", pa.float64()), ("score_rejected", pa.float64()), ("margin", pa.float64())],
}
PAIRS = Columns(prompt="prompt", chosen="chosen", rejected="rejected")


def render_chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def build_mixture(recipe: Recipe, out: Path) -> dict:
    started = time.monotonic()
    count_tokens, tokenizer = counter(recipe.tokenizer)
    shards_dir = out / DATA
    shards_dir.mkdir(parents=True, exist_ok=True)
    for old in shards_dir.glob("part-*.parquet"):
        old.unlink()
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{recipe.memory_mb}MB'")
    con.execute(f"SET temp_directory = '{staging / 'spill'}'")
    con.execute("SET preserve_insertion_order = true")
    try:
        stats = [_stage(con, recipe, source, index, staging, count_tokens) for index, source in enumerate(recipe.sources)]
        quotas, total = _quotas(recipe, stats)
        shards = _write(con, recipe, stats, quotas, shards_dir)
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)
    manifest = _manifest(recipe, stats, quotas, total, shards, tokenizer, time.monotonic() - started)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


# -- 1. staging ------------------------------------------------------------------------------
def _input_files(source: Source, recipe_format: str) -> tuple[list[Path] | list[Location], Columns]:
    default = PAIRS if recipe_format == "preference" else Columns(messages="messages")
    location = Location.of(source.path)
    if not location.is_local:  # on object storage: a synthgen run
        if not is_run(location):
            raise UserError(f"source {source.name}: no synthgen run at {location}")
        return committed_files(location, DATA), source.columns or default
    path = location.local
    if not path.exists():
        raise UserError(f"source {source.name}: path not found: {path}")
    if is_run(path):
        files, columns = [file.local for file in committed_files(path, DATA)], source.columns or default
    elif (path / DATA).is_dir() and (path / MANIFEST).exists():  # an earlier mixture
        files, columns = sorted((path / DATA).glob("*.parquet")), source.columns or default
    else:
        if source.columns is None:
            raise UserError(f"source {source.name}: {path} is not a synthgen run; give columns: (messages, or prompt + "
                            f"completion, or text, or prompt + chosen + rejected)")
        files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".jsonl")) if path.is_dir() else [path]
        columns = source.columns
    if not files:
        raise UserError(f"source {source.name}: no Parquet or JSONL files in {path}")
    kinds = {f.suffix for f in files}
    if len(kinds) > 1:
        raise UserError(f"source {source.name}: mixes Parquet and JSONL files; give one kind per source")
    return files, columns


def _reader(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path] | list[Location], columns: Columns) -> pa.RecordBatchReader:
    names = [str(f) for f in files]
    if isinstance(files[0], Location):  # a run on object storage
        scan, names = f"remote_{hashlib.sha256(source.name.encode()).hexdigest()[:12]}", None
        attach_parquet(con, scan, files)
    else:
        scan = "read_parquet(?)" if files[0].suffix == ".parquet" else "read_json_auto(?, format='newline_delimited')"
    conditions = [f"({source.filter})"] if source.filter else []
    if columns.pairs:  # a tie leaves a record without a pair
        conditions.append(f"len({columns.chosen}) > 0 AND len({columns.rejected}) > 0")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    try:
        return con.sql(f"SELECT * FROM {scan}{where}", params=[names] if names else None).to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as exc:
        raise UserError(f"source {source.name}: {str(exc).splitlines()[0]}") from None


def _stage(con, recipe: Recipe, source: Source, index: int, staging: Path, count_tokens) -> dict:
    files, columns = _input_files(source, recipe.format)
    if (recipe.format == "preference") != columns.pairs:
        raise UserError(f"source {source.name}: format: preference takes prompt + chosen + rejected, and only it does"
                        + ("" if source.columns else " (a synthgen run has them when its workflow has a select step)"))
    reader = _reader(con, source, files, columns)
    salt = int.from_bytes(hashlib.sha256(f"{recipe.seed}/{source.name}".encode()).digest()[:8], "little")
    schema = pa.schema([("row", pa.int64()), ("tokens", pa.int64()), ("key", pa.uint64()), *PAYLOAD[recipe.format]])
    target = staging / f"source-{index}.parquet"
    rows = tokens = size = 0
    with pq.ParquetWriter(target, schema) as writer:
        for batch in reader:
            payload, texts = _normalise(batch, columns, recipe, source)
            counts = count_tokens(texts)
            numbers = np.arange(rows, rows + batch.num_rows, dtype=np.uint64)
            keys = mix64(numbers ^ np.uint64(salt))
            table = pa.table({"row": pa.array(numbers.astype(np.int64)), "tokens": pa.array(counts, pa.int64()),
                              "key": pa.array(keys), **payload}, schema=schema)
            writer.write_table(table)
            rows += batch.num_rows
            tokens += sum(counts)
            size += sum(len(text) for text in texts) + 64 * batch.num_rows
    if rows == 0:
        raise UserError(f"source {source.name}: no rows" + (f" pass the filter {source.filter!r}" if source.filter else ""))
    return {"name": source.name, "file": target, "rows": rows, "tokens": tokens, "bytes": size,
            "inputs": [{"file": str(f), "sha256": _sha256(f)} for f in files]}


def _normalise(batch: pa.RecordBatch, columns: Columns, recipe: Recipe, source: Source) -> tuple[dict, list[str]]:
    names = set(batch.schema.names)
    wanted = [c for c in (columns.messages, columns.prompt, columns.completion, columns.chosen, columns.rejected,
                          columns.system, columns.text) if c]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise UserError(f"source {source.name}: column(s) {', '.join(missing)} not found; it has {', '.join(sorted(names))}")
    data = {c: batch.column(c).to_pylist() for c in wanted}
    if columns.text:
        if recipe.format != "text":
            raise UserError(f"source {source.name}: maps only text, which fits format: text (the recipe asks {recipe.format})")
        texts = [str(t or "") for t in data[columns.text]]
        return {"text": texts}, texts
    if columns.pairs:
        return _pairs(batch, data, columns)
    conversations = [_conversation(data, columns, i) for i in range(batch.num_rows)]
    rendered = [render_chatml(c) for c in conversations]
    if recipe.format == "messages":
        return {"messages": conversations}, rendered
    if recipe.format == "text":
        return {"text": rendered}, rendered
    return {"prompt": [c[:-1] for c in conversations], "completion": [c[-1:] for c in conversations]}, rendered


def _pairs(batch: pa.RecordBatch, data: dict, columns: Columns) -> tuple[dict, list[str]]:
    """Preference rows: each pair stays one row (prompt, chosen, rejected) and its scores come along."""
    def messages(value, role: str) -> list[dict]:
        if isinstance(value, str):
            return [{"role": role, "content": value}]
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value or []]

    payload = {"prompt": [messages(v, "user") for v in data[columns.prompt]],
               "chosen": [messages(v, "assistant") for v in data[columns.chosen]],
               "rejected": [messages(v, "assistant") for v in data[columns.rejected]]}
    for name in ("score_chosen", "score_rejected", "margin"):
        payload[name] = batch.column(name).to_pylist() if name in batch.schema.names else [None] * batch.num_rows
    texts = [render_chatml(p + c) + render_chatml(r) for p, c, r in zip(payload["prompt"], payload["chosen"], payload["rejected"])]
    return payload, texts


def _conversation(data: dict, columns: Columns, i: int) -> list[dict]:
    if columns.messages:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in data[columns.messages][i] or []]
    conversation = [{"role": "system", "content": str(data[columns.system][i])}] if columns.system and data[columns.system][i] else []
    return conversation + [{"role": "user", "content": str(data[columns.prompt][i] or "")},
                           {"role": "assistant", "content": str(data[columns.completion][i] or "")}]


def _sha256(path: Path | Location) -> str:
    if isinstance(path, Location):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- 2. quotas -------------------------------------------------------------------------------
def _quotas(recipe: Recipe, stats: list[dict]) -> tuple[list[float], float]:
    unit = recipe.weight_by
    weights = [source.weight for source in recipe.sources]
    shares = [w / sum(weights) for w in weights]
    limits = []
    for source, stat in zip(recipe.sources, stats):
        limit = stat[unit] * source.max_repeat
        cap = source.max_tokens if unit == "tokens" else source.max_rows
        limits.append(min(limit, cap) if cap else limit)
    total = recipe.total or min(limit / share for limit, share in zip(limits, shares))
    quotas = [share * total for share in shares]
    for source, stat, quota, limit in zip(recipe.sources, stats, quotas, limits):
        if quota > limit * (1 + 1e-9):
            raise UserError(
                f"weights cannot be met: source {source.name} needs {quota:,.0f} {unit} of the total {total:,.0f}, "
                f"but gives at most {limit:,.0f} ({stat[unit]:,} {unit} after its filter, max_repeat {source.max_repeat:g}"
                + (", capped" if limit < stat[unit] * source.max_repeat else "") + "); lower total or its weight, or raise max_repeat"
            )
    return quotas, total


# -- 3. selection, shuffle, shards -----------------------------------------------------------
def _write(con, recipe: Recipe, stats: list[dict], quotas: list[float], out: Path) -> list[dict]:
    unit = "tokens" if recipe.weight_by == "tokens" else "1"
    selects = []
    for index, (stat, quota) in enumerate(zip(stats, quotas)):
        passes = max(1, math.ceil(quota / max(stat[recipe.weight_by], 1)))
        # Whole passes over the source in its shuffled order; stop where the quota is met
        # (a row counts if at least half of it fits).
        selects.append(f"""
            SELECT {index} AS source, row, tokens, copy, key FROM (
                SELECT s.row, s.tokens, s.key, c.range AS copy,
                       sum({unit}) OVER (ORDER BY c.range, s.key ROWS UNBOUNDED PRECEDING) AS reached
                FROM read_parquet('{stat['file']}') s, range({passes}) c)
            WHERE reached - {unit} / 2.0 < {quota}""")
    # Every copy of a row gets its own random place: the global order is one uniform permutation
    # of (source, row, copy), so each shard is a uniform sample of the mixture.
    con.create_function("copy_key", _copy_key, ["UBIGINT", "BIGINT"], "UBIGINT", type="arrow")
    con.execute(f"""CREATE TEMP TABLE chosen AS SELECT *, copy_key(key, copy) AS final
                     FROM ({' UNION ALL '.join(selects)})""")
    taken = con.execute("""SELECT source, count(*), sum(tokens), max(copy) + 1, count(DISTINCT row)
                           FROM chosen GROUP BY source""").fetchall()
    for source, rows, tokens, passes, unique in taken:
        stats[source].update(rows_taken=rows, tokens_taken=int(tokens), passes=passes, unique_rows=unique)
    # The global shuffle in buckets that each fit in a quarter of the memory limit: rows go to
    # a bucket by their random key and are sorted inside it, which is still one uniform
    # permutation, and no sort ever holds more than a bucket of wide rows.
    buckets = _buckets(stats, recipe.memory_mb)
    con.execute("SET preserve_insertion_order = false")
    payload = ", ".join(f"p.{name}" for name, _ in PAYLOAD[recipe.format])
    sources = " UNION ALL ".join(f"SELECT {i} AS source, * FROM read_parquet('{s['file']}')" for i, s in enumerate(stats))
    shards = _ShardSink(out, recipe.shard_rows, [s["name"] for s in stats], [n for n, _ in PAYLOAD[recipe.format]])
    for bucket in range(buckets):
        reader = con.sql(
            f"""SELECT c.source, c.tokens, {payload}
                FROM (SELECT * FROM chosen WHERE final % {buckets} = {bucket}) c
                JOIN ({sources}) p ON p.source = c.source AND p.row = c.row
                ORDER BY c.final, c.source, c.copy"""
        ).to_arrow_reader(BATCH_ROWS)
        for batch in reader:
            shards.add(pa.Table.from_batches([batch]))
    shards.close()
    return shards.written


def _copy_key(keys: pa.Array, copies: pa.Array) -> pa.Array:
    """The shuffle key of one copy of a row: its row key mixed with the copy number (64-bit
    arithmetic in numpy, which wraps; SQL would widen the product and keep copies apart)."""
    key = keys.to_numpy(zero_copy_only=False).astype(np.uint64)
    copy = copies.to_numpy(zero_copy_only=False).astype(np.uint64)
    return pa.array(mix64(key ^ mix64(copy + np.uint64(1))))


def _buckets(stats: list[dict], memory_mb: int) -> int:
    """How many slices the shuffle needs so that one slice of chosen rows fits in memory_mb / 4
    (sizes from the text actually staged: Parquet's own sizes shrink repeated strings)."""
    chosen_bytes = sum(stat["bytes"] * stat.get("rows_taken", 0) / max(stat["rows"], 1) for stat in stats)
    return max(1, math.ceil(chosen_bytes / (memory_mb * 2**20 / 4)))


class _ShardSink:
    """Rows in final order into shards of exactly `size` rows, one batch in memory at a time."""

    def __init__(self, folder: Path, size: int, source_names: list[str], payload: list[str]):
        self.folder, self.size, self.source_names, self.payload = folder, size, source_names, payload
        self.written: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows = self._tokens = 0

    def add(self, table: pa.Table) -> None:
        while table.num_rows:
            part = table.slice(0, self.size - self._rows)
            table = table.slice(part.num_rows)
            shaped = pa.table({"source": pa.array([self.source_names[i] for i in part.column("source").to_pylist()]),
                               **{name: part.column(name) for name in self.payload}, "tokens": part.column("tokens")})
            if self._writer is None:
                self._path = self.folder / f"part-{len(self.written):05d}.parquet"
                self._writer = pq.ParquetWriter(self._path, shaped.schema, compression="zstd")
            self._writer.write_table(shaped)
            self._rows += part.num_rows
            self._tokens += int(pa.compute.sum(part.column("tokens")).as_py() or 0)
            if self._rows == self.size:
                self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.written.append({"file": f"data/{self._path.name}", "rows": self._rows, "tokens": self._tokens})
            self._writer, self._rows, self._tokens = None, 0, 0


def _manifest(recipe: Recipe, stats, quotas, total, shards, tokenizer: str, elapsed: float) -> dict:
    all_rows = sum(s.get("rows_taken", 0) for s in stats) or 1
    all_tokens = sum(s.get("tokens_taken", 0) for s in stats) or 1
    share_total = sum(source.weight for source in recipe.sources)
    return {
        "recipe": recipe.model_dump(mode="json"),
        "format": recipe.format,
        "tokenizer": tokenizer,
        "weight_by": recipe.weight_by,
        "total_target": round(total, 2),
        "rows": sum(s["rows"] for s in shards),
        "tokens": sum(s["tokens"] for s in shards),
        "sources": [
            {
                "name": stat["name"],
                "target_share": round(source.weight / share_total, 6),
                "achieved_share_tokens": round(stat.get("tokens_taken", 0) / all_tokens, 6),
                "achieved_share_rows": round(stat.get("rows_taken", 0) / all_rows, 6),
                "quota": round(quota, 2),
                "rows_available": stat["rows"],
                "tokens_available": stat["tokens"],
                "rows_taken": stat.get("rows_taken", 0),
                "tokens_taken": stat.get("tokens_taken", 0),
                "passes": stat.get("passes", 0),
                "unique_rows": stat.get("unique_rows", 0),
                "max_repetition": stat.get("passes", 0),
                "inputs": stat["inputs"],
            }
            for source, stat, quota in zip(recipe.sources, stats, quotas)
        ],
        "shards": shards,
        "elapsed_s": round(elapsed, 3),
    }
