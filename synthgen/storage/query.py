"""DuckDB over a run's committed shards: the views `data` and `rejects`, the summary that the
manifest records and `synthgen inspect` prints, and free queries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa

from synthgen.config.errors import UserError
from synthgen.storage.layout import DATA, REJECT_COLUMNS, REJECTS, committed_files, record_schema
from synthgen.storage.location import Location


# What the queries at the end of a run may hold in memory before DuckDB spills to disk: the
# driver's memory must not grow with the run (counting a million distinct seed ids takes ~60 MB).
RUN_END_MEMORY = "48MB"


def connect(out: str | Path | Location, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    out = Location.of(out)
    if not out.is_dir():
        raise UserError(f"run directory not found: {out}")
    # Spills go to the system's temp folder (DuckDB's default is `.tmp` in the working directory).
    config = {"temp_directory": os.path.join(tempfile.gettempdir(), "synthgen-duckdb")}
    if memory_limit:  # one thread and no insertion order: what lets DuckDB stay within the limit
        config |= {"memory_limit": memory_limit, "threads": 1, "preserve_insertion_order": False}
    con = duckdb.connect(config=config)
    files = {sub: committed_files(out, sub) for sub in (DATA, REJECTS)}
    for table, sub in (("data", DATA), ("rejects", REJECTS)):
        if files[sub]:
            attach_parquet(con, table, files[sub])
    # An empty side takes the other side's columns, so that queries naming workflow fields still bind.
    if not files[DATA] and files[REJECTS]:
        con.execute(f"CREATE VIEW data AS SELECT * EXCLUDE ({', '.join(REJECT_COLUMNS)}) FROM rejects WHERE false")
    elif not files[REJECTS] and files[DATA]:
        extra = ", ".join(f"NULL::VARCHAR AS {c}" for c in REJECT_COLUMNS)
        con.execute(f"CREATE VIEW rejects AS SELECT *, {extra} FROM data WHERE false")
    elif not files[DATA]:
        for table, is_reject in (("data", False), ("rejects", True)):
            con.register(table, pa.Table.from_pylist([], schema=record_schema([], rejects=is_reject)))
    return con


def attach_parquet(con: duckdb.DuckDBPyConnection, name: str, files: list[Location]) -> None:
    """`name` as a view over Parquet `files`: DuckDB reads local files itself; files on object
    storage through an Arrow dataset on pyarrow.fs (DuckDB's own S3 reader is an extension
    downloaded at first use, which a machine without internet cannot)."""
    if all(file.is_local for file in files):
        listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}], union_by_name=true)")
        return
    import pyarrow.dataset as ds

    con.register(name, ds.dataset([file.path for file in files], filesystem=files[0].fs, format="parquet"))


# Every teacher call of a run, one row each, with the `Turn` fields as columns.
TURNS = "SELECT unnest(t) FROM (SELECT unnest(turns) AS t FROM data UNION ALL SELECT unnest(turns) AS t FROM rejects)"


def summarize(con: duckdb.DuckDBPyConnection) -> dict:
    def scalar(sql: str) -> int:
        return int(con.execute(sql).fetchone()[0] or 0)

    turns = TURNS
    steps = con.execute(
        f"""SELECT step, count(*) AS calls, sum(CASE WHEN cache_hit THEN 0 ELSE 1 END) AS requests,
                   sum(retries) AS retries, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
                   round(avg(CASE WHEN cache_hit THEN NULL ELSE latency_s END), 3) AS mean_latency_s
            FROM ({turns}) GROUP BY step ORDER BY step"""
    ).fetchall()
    teachers = con.execute(
        f"""SELECT teacher, sum(CASE WHEN cache_hit THEN 0 ELSE 1 END) AS requests,
                   sum(CASE WHEN cache_hit THEN 1 ELSE 0 END) AS cache_hits, sum(retries) AS retries,
                   sum(CASE WHEN cache_hit THEN 0 ELSE tokens_in END) AS paid_tokens_in,
                   sum(CASE WHEN cache_hit THEN 0 ELSE tokens_out END) AS paid_tokens_out,
                   round(avg(CASE WHEN cache_hit THEN NULL ELSE latency_s END), 3) AS mean_latency_s
            FROM ({turns}) GROUP BY teacher ORDER BY teacher"""
    ).fetchall()
    reasons = con.execute(
        """SELECT stage, left(reason, 120) AS reason, count(*) AS n FROM rejects
           GROUP BY ALL ORDER BY n DESC, stage, reason LIMIT 20"""
    ).fetchall()
    validators = con.execute(
        """SELECT v.validator, count(*) AS checked, sum(CASE WHEN v.passed THEN 1 ELSE 0 END) AS passed FROM (
               SELECT unnest(verdicts) AS v FROM data UNION ALL SELECT unnest(verdicts) AS v FROM rejects
           ) GROUP BY ALL ORDER BY 1"""
    ).fetchall()
    contamination = con.execute(
        """SELECT regexp_extract(v.detail, 'benchmark=(\\S+)', 1) AS benchmark,
                  regexp_extract(v.detail, 'method=(\\S+)', 1) AS method, count(*) AS hits
           FROM (SELECT unnest(verdicts) AS v FROM rejects)
           WHERE NOT v.passed AND v.detail LIKE 'benchmark=%' GROUP BY ALL ORDER BY hits DESC, 1, 2"""
    ).fetchall()
    scores = con.execute(
        """SELECT v.validator, TRY_CAST(regexp_extract(v.detail, '^score (-?[0-9.]+)', 1) AS DOUBLE) AS score, count(*)
           FROM (SELECT unnest(verdicts) AS v FROM data UNION ALL SELECT unnest(verdicts) AS v FROM rejects)
           WHERE v.validator LIKE 'judge:%' GROUP BY ALL HAVING score IS NOT NULL ORDER BY 1, 2"""
    ).fetchall()
    return {
        "seeds": scalar("SELECT count(DISTINCT seed_id) FROM (SELECT seed_id FROM data UNION ALL SELECT seed_id FROM rejects)"),
        "records": scalar("SELECT count(*) FROM data"),
        "rejects": scalar("SELECT count(*) FROM rejects"),
        "tokens_in": scalar(f"SELECT sum(tokens_in) FROM ({turns})"),
        "tokens_out": scalar(f"SELECT sum(tokens_out) FROM ({turns})"),
        "requests": scalar(f"SELECT count(*) FROM ({turns}) WHERE NOT cache_hit"),
        "cache_hits": scalar(f"SELECT count(*) FROM ({turns}) WHERE cache_hit"),
        "steps": [
            dict(zip(("step", "calls", "requests", "retries", "tokens_in", "tokens_out", "mean_latency_s"), row))
            for row in steps
        ],
        "teachers": [
            dict(zip(("teacher", "requests", "cache_hits", "retries", "paid_tokens_in", "paid_tokens_out",
                      "mean_latency_s"), row))
            for row in teachers
        ],
        "rejects_by_reason": [dict(zip(("stage", "reason", "count"), row)) for row in reasons],
        "validators": [
            {"validator": name, "checked": checked, "passed": passed, "pass_rate": round(passed / checked, 4)}
            for name, checked, passed in validators
        ],
        "contamination": [dict(zip(("benchmark", "method", "hits"), row)) for row in contamination],
        "judges": judge_spread(scores),
    }


# A judge that gives one score to this share of at least this many samples tells them apart no
# better than a constant: a lazy or broken grader, whose verdicts should not be trusted.
UNINFORMATIVE_SHARE, UNINFORMATIVE_MIN_SCORED = 0.9, 5


def judge_spread(rows: list[tuple[str, float, int]]) -> list[dict]:
    """Per judge step: how many samples it scored, its scores, and whether it is uninformative."""
    histograms: dict[str, dict[float, int]] = {}
    for validator, score, count in rows:
        histograms.setdefault(validator.removeprefix("judge:"), {})[score] = count
    spread = []
    for judge, histogram in histograms.items():
        scored = sum(histogram.values())
        mode, mode_count = max(histogram.items(), key=lambda item: item[1])
        spread.append({"judge": judge, "scored": scored, "scores": {f"{s:g}": n for s, n in histogram.items()},
                       "mode": mode, "mode_share": round(mode_count / scored, 4),
                       "uninformative": scored >= UNINFORMATIVE_MIN_SCORED and mode_count / scored >= UNINFORMATIVE_SHARE})
    return spread


def query(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    try:
        result = con.execute(sql)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0]}") from None
    if result.description is None:
        return ""
    header = [d[0] for d in result.description]
    rows = result.fetchall()
    return "\n".join(["\t".join(header)] + ["\t".join("" if v is None else str(v) for v in row) for row in rows])
