"""End to end on real local Ray, the real openai client over HTTP and real Parquet, with the
scripted teacher as the only stand-in."""

from __future__ import annotations

import json
import re
import shutil

import duckdb
import pytest

from conftest import free_port, SHIPPED_CODE_SEEDS, synthgen_cli, workflow_yaml

import synthgen
from synthgen.config.workflow import SeedSource
from synthgen.scripted_teacher import Fault, Reply
from synthgen.seeds.load import load_seeds


def _no_code_for_primes(messages):
    last = messages[-1]["content"]
    if "CODE" in last and "prime" in last:
        return Reply("I would rather explain it in words.")
    if "CODE" in last:
        return Reply("```python\ndef solution():\n    return 42\n```")
    return Reply(f"Write a function. Context: {last[:300]}")


def _settled(out):
    con = duckdb.connect()
    ids = [row[0] for row in con.execute(
        f"SELECT seed_id FROM read_parquet('{out}/data/*.parquet') UNION ALL "
        f"SELECT seed_id FROM read_parquet('{out}/rejects/*.parquet') WHERE seed_id NOT IN "
        f"(SELECT seed_id FROM read_parquet('{out}/data/*.parquet'))"
    ).fetchall()]
    return ids


def test_every_shipped_seed_ends_in_data_or_rejects(ray_local, teacher, tmp_path):
    teacher.responder = _no_code_for_primes
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    report = synthgen.run(path, out=str(tmp_path / "out"))
    seeds = {s.seed_id for s in load_seeds(SeedSource(path=str(SHIPPED_CODE_SEEDS))).seeds}

    assert report.status == "done"
    settled = _settled(tmp_path / "out")
    assert sorted(settled) == sorted(seeds), "each seed exactly once"
    con = duckdb.connect()
    rejects = con.execute(f"SELECT stage, reason, raw FROM read_parquet('{tmp_path}/out/rejects/*.parquet')").fetchall()
    assert rejects and all(r[0] == "solution" and "no fenced code block" in r[1] for r in rejects)
    assert all(r[2] == "I would rather explain it in words." for r in rejects), "the raw answer is kept"
    record = con.execute(
        f"SELECT messages, solution, turns, workflow_hash FROM read_parquet('{tmp_path}/out/data/*.parquet') LIMIT 1"
    ).fetchone()
    messages, solution, turns, workflow_hash = record
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert solution == "def solution():\n    return 42" == messages[1]["content"]
    assert [t["step"] for t in turns] == ["instruction", "solution"]
    assert all(t["tokens_out"] > 0 and not t["cache_hit"] for t in turns)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["seeds"]["settled"] == len(seeds) and manifest["seeds"]["pending"] == 0
    assert manifest["counts"]["records"] + manifest["counts"]["rejects"] == len(seeds)
    assert manifest["workflow_hash"] == workflow_hash
    assert manifest["teacher"]["requests"] == teacher.total_requests
    assert sum(s["seeds"] for s in manifest["shards"]) == len(seeds)


def test_rerun_of_a_finished_run_sends_nothing(ray_local, teacher, tmp_path):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    synthgen.run(path, out=str(tmp_path / "out"), limit=10)
    sent = teacher.total_requests
    assert sent == 20
    report = synthgen.run(path, out=str(tmp_path / "out"), limit=10)
    assert teacher.total_requests == sent and report.processed == 0 and report.skipped_committed == 10


def test_lost_shards_are_rebuilt_from_the_response_cache(ray_local, teacher, tmp_path):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    out = tmp_path / "out"
    synthgen.run(path, out=str(out), limit=6)
    sent = teacher.total_requests
    for sub in ("data", "rejects", "_commits"):
        shutil.rmtree(out / sub)
    report = synthgen.run(path, out=str(out), limit=6)
    assert teacher.total_requests == sent, "every answer came from OUT/cache"
    assert report.processed == 6 and report.summary["records"] == 6 and report.summary["cache_hits"] == 12


def test_seed_level_failures_become_rejects_with_reasons(ray_local, teacher, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {"text": "def ok():\n    '''fine'''\n    return 1  # an ordinary seed", "tag": "x"},
        {"text": "def refused():\n    '''the teacher answers 400 for this one'''\n    return 2"},
        {"text": "def truncated():\n    '''the answer is cut at max_tokens'''\n    return 3"},
    ]
    seeds.write_text("\n".join(json.dumps(r) for r in rows))
    teacher.faults.append(Fault(kind="status", status=400, match="refused", times=None))

    def responder(messages):
        last = messages[-1]["content"]
        if "truncated" in last:
            return Reply("```python\ndef trunc", finish_reason="length")
        return _no_code_for_primes(messages)

    teacher.responder = responder
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=seeds, url=teacher.url)
    # A template that fails on seeds without the 'tag' meta field: StrictUndefined, caught per seed.
    text = path.read_text().replace('"CODE for: {{ instruction }}"', '"CODE for: {{ instruction }} {{ seed.meta.tag.upper() }}"')
    path.write_text(text)
    report = synthgen.run(path, out=str(tmp_path / "out"))
    assert report.status == "done"
    con = duckdb.connect()
    rejects = dict(con.execute(
        f"SELECT stage || ':' || seed_id, reason FROM read_parquet('{tmp_path}/out/rejects/*.parquet')"
    ).fetchall())
    reasons = sorted(rejects.values())
    assert len(reasons) == 3
    assert reasons[0] == "answer truncated (finish_reason=length); raise max_tokens"
    assert reasons[1].startswith("teacher refused: HTTP 400")
    # 'tag' is not among seeds.meta_fields, so the template fails for the ordinary seed too.
    assert reasons[2].startswith("template: UndefinedError") and "'tag'" in reasons[2]
    assert report.summary["records"] == 0 and report.summary["seeds"] == 3


def test_unreachable_teacher_leaves_seeds_unsettled_and_a_rerun_finishes(ray_local, teacher, tmp_path):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, max_retries=0)
    teacher.faults.append(Fault(kind="status", status=503, match="def binary_search", times=None))
    out = tmp_path / "out"
    report = synthgen.run(path, out=str(out), limit=12)
    assert report.status == "partial" and len(report.unsettled) == 1
    assert "rerun to resume" in report.message and "503" in report.message
    assert report.summary["seeds"] == 11
    teacher.faults.clear()
    report = synthgen.run(path, out=str(out), limit=12)
    assert report.status == "done" and report.processed == 1 and report.summary["seeds"] == 12



def _one_line_error(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_unreachable_teacher_names_url_and_what_was_tried(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=url)
    line = _one_line_error(synthgen_cli("run", str(path), "--out", str(tmp_path / "out")))
    assert f"unreachable at {url}" in line and f"tried GET {url}/models" in line


def test_cli_missing_and_empty_seeds(tmp_path, teacher):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=tmp_path / "absent.jsonl", url=teacher.url)
    line = _one_line_error(synthgen_cli("run", str(path)))
    assert f"seed path not found: {tmp_path / 'absent.jsonl'}" in line
    (tmp_path / "empty.jsonl").write_text("\n")
    line = _one_line_error(synthgen_cli("run", str(path), "--seeds", str(tmp_path / "empty.jsonl")))
    assert "no seeds found in" in line


def test_cli_unknown_key_in_run(tmp_path, teacher):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    path.write_text(path.read_text().replace("parse: code_block", "parse: code_block\n    n_samples: 3"))
    line = _one_line_error(synthgen_cli("run", str(path)))
    assert f"{path}:10: unknown key 'n_samples' in steps[1]; valid keys: id, prompt" in line


@pytest.mark.slow  # a whole run in a subprocess (or the real LLM)
def test_cli_run_then_inspect(tmp_path, teacher):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    out = tmp_path / "out"
    result = synthgen_cli("run", str(path), "--out", str(out), "--limit", "5")
    assert result.returncode == 0, result.stderr
    assert "records         5" in result.stdout and "5/5 seeds (100%)" in result.stderr
    # A normal run says nothing at error level (Ray's C++ lines read "[date time E pid tid]").
    errors = [line for line in result.stderr.splitlines() if re.search(r"^\[[^]]* E \d+|ERROR|Error|Warning", line)]
    assert not errors, errors
    summary = synthgen_cli("inspect", str(out))
    assert summary.returncode == 0 and "seeds settled   5" in summary.stdout
    query = synthgen_cli("inspect", str(out), "--sql", "SELECT count(*) AS n FROM data WHERE solution LIKE '%42%'")
    assert query.stdout.split() == ["n", "5"]
    bad = synthgen_cli("inspect", str(out), "--sql", "SELECT nope FROM data")
    assert bad.returncode == 1 and bad.stderr.startswith("error: query failed")


@pytest.mark.parametrize("changed", ["prompt"])
def test_resume_refuses_a_changed_workflow(ray_local, teacher, tmp_path, changed):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    synthgen.run(path, out=str(tmp_path / "out"), limit=2)
    path.write_text(path.read_text().replace("Describe the task", "Describe precisely the task"))
    from synthgen.config.errors import UserError

    with pytest.raises(UserError, match="another version of workflow 'test_reversal'"):
        synthgen.run(path, out=str(tmp_path / "out"), limit=2)


def test_progress_is_live_while_a_batch_still_runs(ray_local, teacher, tmp_path, caplog):
    """Results reach the driver a batch at a time; the progress line must not wait for that."""
    from synthgen.engine.registry import load_workflow
    from synthgen.runtime.runner import run

    teacher.latency_s = 0.4
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, max_in_flight=2)
    workflow = load_workflow(path, out=str(tmp_path / "out"), limit=6)
    workflow.runtime.seeds_per_batch = 6  # one batch: the driver sees nothing until it is whole
    with caplog.at_level("INFO", logger="synthgen"):
        report = run(workflow, progress_interval_s=0.5)
    assert report.status == "done"
    lines = [r.getMessage() for r in caplog.records if " seeds (" in r.getMessage()]
    partial = [line for line in lines if not line.startswith("6/6") and (not line.startswith("0/") or "through" in line)]
    assert partial, f"no progress line between start and end: {lines}"


def test_progress_moves_through_the_steps_before_any_seed_settles(ray_local, teacher, tmp_path, caplog):
    """A seed with many slow steps settles late; the progress line shows its samples moving
    through the steps (and the requests paid) long before."""
    from synthgen.engine.registry import load_workflow
    from synthgen.runtime.runner import run

    teacher.latency_s = 0.3
    more = "".join(f'  - id: step{n}\n    prompt: "Again, step {n}: {{{{ solution }}}}"\n' for n in range(3, 8))
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, max_in_flight=1, extra_steps=more)
    workflow = load_workflow(path, out=str(tmp_path / "out"), limit=2)
    with caplog.at_level("INFO", logger="synthgen"):
        report = run(workflow, progress_interval_s=0.5)
    assert report.status == "done"
    lines = [r.getMessage() for r in caplog.records if " seeds (" in r.getMessage()]
    early = [line for line in lines if line.startswith("0/2 seeds") and "| through instruction 2" in line]
    assert early and " 0.0 req/s" not in early[-1], f"no step progress before the first seed settled: {lines}"


def test_the_demo_says_which_workflow_kept_nothing_and_why():
    from types import SimpleNamespace

    from synthgen.interface.demo import demo_warnings

    def report(records, reasons):
        return SimpleNamespace(summary={"records": records, "rejects": sum(r["count"] for r in reasons), "rejects_by_reason": reasons})

    rows = [("textbook", report(0, [{"count": 5, "stage": "validate:novelty", "reason": "section copies its own prompt"},
                                    {"count": 1, "stage": "judge:value", "reason": "score 3 below the minimum 6"}])),
            ("rewrite_augment", report(4, []))]
    lines = demo_warnings(rows)
    assert lines[0] == ("WARNING: textbook accepted nothing (6 rejects): 5x [validate:novelty] section copies its own prompt; "
                        "1x [judge:value] score 3 below the minimum 6")
    assert "--teacher-url" in lines[1] and len(lines) == 2
    assert demo_warnings(rows[1:]) == []
