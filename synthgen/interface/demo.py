"""`synthgen demo`: the embedded teacher, the built-in workflows on slices of the shipped seeds,
and a Phi-4-shaped mixture of what they accepted."""

from __future__ import annotations

import time
from pathlib import Path

from synthgen.config.errors import UserError
from synthgen.config.recipe import Recipe
from synthgen.engine.embedded_teacher import EmbeddedTeacher
from synthgen.engine.registry import load_workflow
from synthgen.interface.api import run_workflow
from synthgen.interface.inspection import print_run_report
from synthgen.pipelines.mix import build_mixture
from synthgen.runtime.cluster import ray_session

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO_SLICES = {"instruction_reversal": 6, "rewrite_augment": 6, "self_revision": 6, "textbook": 6}
# The Phi-4 report's mixture shape: web rewrites, synthetic, code, acquired Q&A.
DEMO_MIX = {"rewrite_augment": 30, "textbook": 40, "instruction_reversal": 20}
ACQUIRED_WEIGHT = 10


def workflows_dir() -> Path:
    for candidate in (REPOSITORY / "workflows", Path.cwd() / "workflows"):
        if candidate.is_dir():
            return candidate
    raise UserError("the built-in workflows/ folder was not found; run from a synthgen checkout")


def demo(out: Path) -> bool:
    """Run the demo into `out`; False when a run ended partial."""
    started = time.monotonic()
    complete = True
    rows = []
    with EmbeddedTeacher(out / "teacher.log") as teacher, ray_session():
        for name, limit in DEMO_SLICES.items():
            workflow = load_workflow(workflows_dir() / f"{name}.yaml", out=str(out / name), teacher_url=teacher.url, limit=limit)
            report = run_workflow(workflow)
            print_run_report(name, report)
            rows.append((name, report))
            complete = complete and report.status == "done"
    print(f"\n== demo finished in {time.monotonic() - started:.0f}s")
    print(f"{'workflow':<22}{'seeds':>6}{'records':>9}{'rejects':>9}{'tokens out':>12}  shards")
    for name, report in rows:
        s = report.summary
        print(f"{name:<22}{s['seeds']:>6}{s['records']:>9}{s['rejects']:>9}{s['tokens_out']:>12}  {report.out}/data")
    for line in demo_warnings(rows):
        print(line)
    _demo_mixture(out, rows)
    kept = [report.out for _, report in rows if report.summary["records"]]
    if kept:
        print(f"look inside: synthgen inspect {kept[0]} --sql \"SELECT * FROM data LIMIT 3\"")
    print("reports: " + ", ".join(f"{report.out}/report/index.html" for _, report in rows))
    return complete


def demo_warnings(rows) -> list[str]:
    """A workflow that kept nothing is said so, with its top reject reasons, and what would help."""
    lines = []
    for name, report in rows:
        summary = report.summary
        if summary["records"]:
            continue
        top = "; ".join(f"{r['count']}x [{r['stage']}] {r['reason'][:120]}" for r in summary["rejects_by_reason"][:2])
        lines.append(f"WARNING: {name} accepted nothing ({summary['rejects']} rejects): {top or 'no seed settled'}")
    if lines:
        lines.append("the embedded teacher is a 135M-parameter model: for real data, give a stronger one "
                     "(synthgen run WORKFLOW.yaml --teacher-url URL --model NAME)")
    return lines


def _demo_mixture(out: Path, rows) -> None:
    """A 30/40/20/10 mixture of the demo's runs and the shipped Q&A seeds (as acquired data);
    a run that accepted nothing on its small slice is left out, and the line says so."""
    empty = [name for name, report in rows if name in DEMO_MIX and not report.summary["records"]]
    if len(empty) == len(DEMO_MIX):  # the shipped Q&A repeated 100 times is no mixture
        print(f"mixture: none: no workflow accepted a record on this slice ({', '.join(empty)}); "
              "a stronger teacher (--teacher-url) or more seeds give one")
        return
    sources = [{"name": name, "path": str(out / name), "weight": weight, "max_repeat": 100}
               for name, weight in DEMO_MIX.items() if name not in empty]
    sources.append({"name": "acquired_qa", "path": str(REPOSITORY / "seeds" / "qa.jsonl"),
                    "weight": ACQUIRED_WEIGHT, "max_repeat": 100, "columns": {"prompt": "question", "completion": "answer"}})
    manifest = build_mixture(Recipe(name="demo_mixture", sources=sources, shard_rows=100), out / "mixture")
    shares = ", ".join(f"{s['name']} {s['achieved_share_tokens']:.1%} (target {s['target_share']:.1%}; "
                       f"{s['rows_taken']} rows of {s['unique_rows']} unique, each at most {s['max_repetition']}x)"
                       for s in manifest["sources"])
    print(f"mixture: {manifest['rows']} rows, {manifest['tokens']} tokens in {out / 'mixture'}; token shares: {shares}"
          + (f"; left out (no accepted records): {', '.join(empty)}" if empty else ""))
