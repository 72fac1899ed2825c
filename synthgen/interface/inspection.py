"""How `synthgen inspect` and the end of a run show a run's summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from synthgen.interface.report import write_report
from synthgen.storage.query import RUN_END_MEMORY

if TYPE_CHECKING:
    from synthgen.runtime.runner import RunReport


def format_summary(summary: dict) -> str:
    seeds = summary["seeds"]
    lines = [
        f"seeds settled   {seeds}",
        f"records         {summary['records']}",
        f"rejects         {summary['rejects']}",
        f"teacher         {summary['requests']} requests, {summary['cache_hits']} cache hits, "
        f"{summary['tokens_in']} tokens in, {summary['tokens_out']} tokens out",
    ]
    if summary["steps"]:
        lines.append("per step        calls  requests  retries  tokens_out  mean latency")
        for step in summary["steps"]:
            lines.append(
                f"  {step['step']:<14}{step['calls']:>5}  {step['requests']:>8}  {step['retries']:>7}  "
                f"{step['tokens_out']:>10}  {step['mean_latency_s'] if step['mean_latency_s'] is not None else '-'}"
            )
    for teacher in summary["teachers"]:
        cost = f", cost ${teacher['cost_usd']:.4f}" if teacher.get("cost_usd") is not None else ""
        lines.append(
            f"teacher {teacher['teacher']}: {teacher['requests']} requests, {teacher['retries']} retries, "
            f"{teacher['cache_hits']} cache hits{cost}"
        )
    for validator in summary["validators"]:
        lines.append(f"validator {validator['validator']}: {validator['passed']}/{validator['checked']} passed")
    for judge in summary.get("judges", []):
        if judge["uninformative"]:
            lines.append(f"judge {judge['judge']}: UNINFORMATIVE: scored {judge['mode']:g} on {judge['mode_share']:.0%} "
                         f"of {judge['scored']} samples; its verdicts do not tell good from bad")
        else:
            lines.append(f"judge {judge['judge']}: {judge['scored']} scored, spread {judge['scores']}")
    for row in summary.get("contamination", []):
        lines.append(f"contamination {row['benchmark']}: {row['hits']} by {row['method']}")
    if summary["rejects_by_reason"]:
        lines.append("rejects by reason")
        for row in summary["rejects_by_reason"]:
            lines.append(f"  {row['count']:>5}  [{row['stage']}] {row['reason']}")
    return "\n".join(lines)


def print_run_report(name: str, report: RunReport) -> None:
    """The end of a run: status, summary, where the shards are, the HTML report."""
    print(f"\n== {name}: {report.status} in {report.elapsed_s:.1f}s "
          f"({report.processed} seeds run now, {report.skipped_committed} already committed)")
    print(format_summary(report.summary))
    print(f"shards: {report.out}/data (records), {report.out}/rejects; manifest: {report.out}/manifest.json")
    try:
        print(f"report: {write_report(report.out, RUN_END_MEMORY)}")
    except duckdb.Error as exc:  # the run's data is committed; the page is one command away
        print(f"report: not written ({str(exc).splitlines()[0]}); `synthgen report {report.out}` writes it")
    if report.message:
        print(report.message)
