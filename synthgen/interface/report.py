"""The run report: one self-contained HTML page (plots inline as SVG, also written beside it)
that shows people what a run produced: the acceptance funnel, rejects by reason, lengths and
tokens, teacher cost per step, throughput over time, contamination hits and sample records."""

from __future__ import annotations

import collections
import html
import json
import re
import textwrap
from pathlib import Path

from synthgen.interface import charts
from synthgen.storage.layout import MANIFEST
from synthgen.storage.location import Location
from synthgen.storage.query import connect, summarize

SAMPLES = 3
SECTIONS = ("overview", "funnel", "rejects", "lengths", "teachers", "throughput", "contamination", "samples")


def write_report(out: str | Path | Location, memory_limit: str | None = None) -> Location:
    """Write OUT/report/index.html (+ each plot as an SVG file) for the run in `out`; return the page's location."""
    out = Location.of(out)
    con = connect(out, memory_limit)
    summary = summarize(con)
    manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else {}
    folder = out / "report"
    folder.make_dirs()
    page = _Page(folder)
    steps = [step["id"] for step in manifest.get("config", {}).get("steps", [])]
    page.section("overview", "Overview", _overview(manifest, summary))
    page.section("funnel", "Acceptance funnel", _funnel(page, con, steps, summary))
    page.section("rejects", "Rejects by reason", _rejects(page, summary))
    page.section("lengths", "Lengths and tokens", _lengths(page, con))
    page.section("teachers", "Tokens and cost per teacher and step", _teachers(summary))
    page.section("throughput", "Throughput over time", _throughput(page, con))
    page.section("contamination", "Contamination hits per benchmark", _contamination(summary))
    page.section("samples", "Sample records", _samples(con))
    title = f"synthgen report: {manifest.get('workflow', out.name)}"
    path = folder / "index.html"
    path.write_text(page.render(title))
    return path


class _Page:
    def __init__(self, folder: Location):
        self.folder = folder
        self.parts: list[str] = []

    def section(self, anchor: str, title: str, body: str) -> None:
        self.parts.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>')

    def plot(self, name: str, svg: str) -> str:
        """The plot inline (the page is one file to pass around), and beside it as NAME.svg."""
        (self.folder / f"{name}.svg").write_text(svg)
        return f'<figure id="plot-{html.escape(name)}">{svg}</figure>'

    def render(self, title: str) -> str:
        style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
                 "pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}section{margin-bottom:2em}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{''.join(self.parts)}</body></html>")


def _table(header: list[str], rows: list[list]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _overview(manifest: dict, summary: dict) -> str:
    seeds = manifest.get("seeds", {})
    rows = [
        ["workflow", manifest.get("workflow", "?")], ["workflow hash", manifest.get("workflow_hash", "?")],
        ["status", manifest.get("status", "?")], ["seeds settled", summary["seeds"]],
        ["seeds pending", seeds.get("pending", "?")], ["records", summary["records"]], ["rejects", summary["rejects"]],
        ["teacher requests (paid)", summary["requests"]], ["cache hits", summary["cache_hits"]],
        ["tokens in / out", f"{summary['tokens_in']} / {summary['tokens_out']}"],
        ["cost (USD)", summary.get("cost_usd") if summary.get("cost_usd") is not None else "no price configured"],
    ]
    for judge in summary.get("judges", []):
        verdict = (f"UNINFORMATIVE: {judge['mode']:g} for {judge['mode_share']:.0%} of {judge['scored']} samples"
                   if judge["uninformative"] else f"{judge['scored']} scored: {judge['scores']}")
        rows.append([f"judge {judge['judge']}", verdict])
    return _table(["", ""], rows)


def _funnel(page: _Page, con, steps: list[str], summary: dict) -> str:
    by_stage = dict(con.execute("SELECT stage, count(*) FROM rejects GROUP BY stage").fetchall())
    order = [s for s in steps if s in by_stage] + sorted(s for s in by_stage if s not in steps)
    remaining = summary["records"] + summary["rejects"]
    rows, labels, values = [], ["samples"], [remaining]
    for stage in order:
        remaining -= by_stage[stage]
        rows.append([stage, by_stage[stage], remaining])
        labels.append(f"after {stage}")
        values.append(remaining)
    image = page.plot("funnel", charts.bars(labels, values, "samples", label_width=160))
    validators = _table(["validator", "checked", "passed", "pass rate"],
                        [[v["validator"], v["checked"], v["passed"], f"{v['pass_rate']:.1%}"] for v in summary["validators"]])
    return image + _table(["stage", "rejected here", "still in"], rows) + "<h3>Validators</h3>" + validators


def reason_class(stage: str, reason: str) -> str:
    """A reject reason without its particulars (numbers, quoted values), so that `score 3 below 6`
    and `score 4 below 6` are one bar."""
    general = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    general = re.sub(r"\d+(?:\.\d+)?", "N", general)
    return f"[{stage}] {general}"


def _rejects(page: _Page, summary: dict) -> str:
    rows = summary["rejects_by_reason"]
    classes: collections.Counter[str] = collections.Counter()
    for row in rows:
        classes[reason_class(row["stage"], row["reason"])] += row["count"]
    page_image = ""
    if classes:
        top = classes.most_common(10)
        # Two lines of the chart's labels; classes that shorten alike keep apart by their rank.
        labels = [textwrap.shorten(label, 100, placeholder="…") for label, _ in top]
        labels = [f"{label} ({n})" if labels.count(label) > 1 else label for n, label in enumerate(labels)]
        page_image = page.plot("rejects", charts.bars(labels, [n for _, n in top], "samples", color="#c66"))
    return page_image + _table(["count", "stage", "reason"], [[r["count"], r["stage"], r["reason"]] for r in rows])


HISTOGRAM_SAMPLE = 20_000  # rows a histogram is drawn from (a uniform sample of a larger run)
CURVE_POINTS = 400


def _lengths(page: _Page, con) -> str:
    """Length statistics computed by DuckDB over every record (the median approximate: an exact
    one holds every value in memory); the histogram from a sample, so that a run of millions of
    records is never fetched into Python."""
    per_record = """SELECT (SELECT sum(t.tokens_out) FROM unnest(turns) AS u(t)) AS tokens,
                           (SELECT sum(length(m.content)) FROM unnest(messages) AS v(m)) AS chars FROM data"""
    stats = con.execute(f"""SELECT count(*), min(tokens), approx_quantile(tokens, 0.5), max(tokens), min(chars), approx_quantile(chars, 0.5), max(chars)
                            FROM (SELECT coalesce(tokens, 0) AS tokens, coalesce(chars, 0) AS chars FROM ({per_record}))""").fetchone()
    if not stats[0]:
        return "<p>no accepted records</p>"
    tokens = [r[0] or 0 for r in con.execute(f"SELECT tokens FROM ({per_record}) USING SAMPLE {HISTOGRAM_SAMPLE} ROWS").fetchall()]
    image = page.plot("lengths", charts.histogram(tokens, min(30, max(5, len(tokens))),
                                                  "teacher tokens per accepted record", "records"))
    rows = [["teacher tokens per record", *(round(v) for v in stats[1:4])],
            ["characters of messages per record", *(round(v) for v in stats[4:7])]]
    return image + _table(["", "min", "median", "max"], rows)


def _teachers(summary: dict) -> str:
    teachers = _table(["teacher", "requests", "cache hits", "retries", "paid tokens in", "paid tokens out", "mean latency s", "cost USD"],
                      [[t["teacher"], t["requests"], t["cache_hits"], t["retries"], t["paid_tokens_in"], t["paid_tokens_out"],
                        t["mean_latency_s"], t.get("cost_usd", "-")] for t in summary["teachers"]])
    steps = _table(["step", "calls", "requests", "retries", "tokens in", "tokens out", "mean latency s"],
                   [[s["step"], s["calls"], s["requests"], s["retries"], s["tokens_in"], s["tokens_out"], s["mean_latency_s"]]
                    for s in summary["steps"]])
    return teachers + "<h3>Per step</h3>" + steps


def _throughput(page: _Page, con) -> str:
    """Samples settled over the run, cumulative, at the moments they settled (at most
    CURVE_POINTS points, picked by DuckDB, so a one-second run and a one-day run both draw as a
    curve and neither is fetched whole)."""
    settled = "SELECT epoch_ms(created_at) / 1000.0 AS t FROM (SELECT created_at FROM data UNION ALL SELECT created_at FROM rejects)"
    count, first, last = con.execute(f"SELECT count(*), min(t), max(t) FROM ({settled})").fetchone()
    if not count:
        return "<p>nothing settled</p>"
    every = max(1, count // CURVE_POINTS)
    points = con.execute(f"""SELECT t, n FROM (SELECT t, row_number() OVER (ORDER BY t) AS n FROM ({settled}))
                             WHERE (n - 1) % {every} = 0 OR n = {count} ORDER BY n""").fetchall()
    span = max(last - first, 0.001)
    unit, scale = ("hours", 3600) if span > 7200 else ("minutes", 60) if span > 600 else ("seconds", 1)
    image = page.plot("throughput", charts.steps([(t - first) / scale for t, _ in points], [n for _, n in points],
                                                 f"{unit} into the run", "samples settled (cumulative)"))
    return image + _table(["samples settled", "span s", "per second"], [[count, round(span, 1), round(count / span, 2)]])


def _contamination(summary: dict) -> str:
    return _table(["benchmark", "method", "hits"], [[c["benchmark"], c["method"], c["hits"]] for c in summary.get("contamination", [])])


def _samples(con) -> str:
    rows = con.execute(f"SELECT record_id, messages FROM data ORDER BY record_id LIMIT {SAMPLES}").fetchall()
    if not rows:
        return "<p>no accepted records</p>"
    parts = []
    for record_id, messages in rows:
        turns = "".join(f"<p><b>{html.escape(m['role'])}</b></p><pre>{html.escape(m['content'])}</pre>" for m in messages)
        parts.append(f"<h3>{html.escape(record_id)}</h3>{turns}")
    return "".join(parts)
