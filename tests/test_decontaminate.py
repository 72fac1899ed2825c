"""Decontamination and dedup: disguised HumanEval items are caught, clean text is not, the
thresholds hold at their edges, dedup works across workers, fingerprint shards and a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import synthgen_cli
from planted import DISGUISES, clean_texts, disguise, humaneval_items, ordinary_code, program, short_quotes

import synthgen
from synthgen.engine.references import Params, ReferenceIndex

SAMPLE = humaneval_items()[::9]  # 19 items, every kind of problem


@pytest.fixture(scope="module")
def humaneval_index(tmp_path_factory):
    return ReferenceIndex.open(["humaneval"], Params(), cache_root=tmp_path_factory.mktemp("refcache"))


def _words_in_docstring(item) -> int:
    return len(disguise(item, "prompt_quoted").split()) - len("Write a Python function for the following problem. Explain your approach first.".split())


@pytest.mark.parametrize("how", DISGUISES)
def test_disguised_humaneval_items_are_caught(humaneval_index, how):
    items = [item for item in SAMPLE if how != "prompt_quoted" or _words_in_docstring(item) >= 13]
    hits = humaneval_index.check([disguise(item, how) for item in items])
    missed = [item["task_id"] for item, hit in zip(items, hits) if hit is None]
    assert not missed, f"{how}: missed {missed}"
    same_program = {item["task_id"]: program(item) for item in humaneval_items()}
    for item, hit in zip(items, hits):
        assert hit.benchmark == "humaneval"
        # Two HumanEval items (56 and 61) are the same problem: either is a right answer.
        assert hit.item_id == item["task_id"] or same_program[hit.item_id].split('"""')[-1] == program(item).split('"""')[-1]


def test_shipped_seeds_are_clean(humaneval_index):
    texts = clean_texts()
    assert len(texts) > 100
    flagged = [(text[:60], hit) for text, hit in zip(texts, humaneval_index.check(texts)) if hit is not None]
    assert not flagged


def test_short_quotes_of_benchmark_prompts_are_caught(humaneval_index):
    """A docstring sentence of 6-12 words inside an instruction is shorter than a 13-gram; the
    quote method finds it (sentences that two items share, like 'You are given a list of
    integers.', are boilerplate and not indexed)."""
    planted = short_quotes()
    assert len(planted) > 150
    hits = humaneval_index.check([text for _, text in planted])
    caught = [hit for hit in hits if hit is not None]
    assert len(caught) >= 0.8 * len(planted), f"caught {len(caught)} of {len(planted)}"
    assert all(hit.benchmark == "humaneval" for hit in caught)
    assert humaneval_index.check(["You are given a list of integers. Return the largest one."]) == [None]


@pytest.mark.slow  # every check method over a thousand stdlib definitions
def test_quotes_find_nothing_in_ordinary_code(humaneval_index):
    texts = ordinary_code(every=2)
    assert len(texts) > 1000
    quoted = [(text[:80], hit) for text, hit in zip(texts, humaneval_index.check(texts)) if hit and hit.method == "quote"]
    assert not quoted


@pytest.mark.parametrize(("option", "value"), [("--ngram", "0"), ("--jaccard", "1.5"), ("--jaccard", "0")])
def test_cli_refuses_thresholds_that_mean_nothing(tmp_path, option, value):
    result = synthgen_cli("decontaminate", str(tmp_path), option, value, "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(f"error: {option}:")


@pytest.fixture
def reference_file(tmp_path):
    words = [f"token{i}" for i in range(40)]
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"id": "item-1", "question": " ".join(words)}) + "\n")
    return path, words


@pytest.mark.parametrize(
    ("shared", "min_overlap", "flagged"),
    [(12, 1, False), (13, 1, True), (13, 2, False), (14, 2, True)],
)
def test_ngram_overlap_edges(reference_file, tmp_path, shared, min_overlap, flagged):
    path, words = reference_file
    spec = {"path": str(path), "name": "local", "id_field": "id"}
    index = ReferenceIndex.open([spec], Params(ngram=13, min_overlap=min_overlap, jaccard=1.0), cache_root=tmp_path / "c")
    text = "Unrelated opening words here. " + " ".join(words[5 : 5 + shared]) + " and an unrelated ending."
    [hit] = index.check([text])
    assert (hit is not None) == flagged
    if flagged:
        assert (hit.benchmark, hit.item_id, hit.method) == ("local", "item-1", "ngram")


@pytest.mark.parametrize(("threshold", "flagged"), [(0.5, True), (0.95, False)])
def test_minhash_threshold_edges(reference_file, tmp_path, threshold, flagged):
    path, words = reference_file
    spec = {"path": str(path), "name": "local", "id_field": "id"}
    params = Params(ngram=13, min_overlap=10**6, jaccard=threshold)  # n-grams out of the way
    index = ReferenceIndex.open([spec], params, cache_root=tmp_path / "c")
    edited = list(words)
    edited[20] = "changed"  # 5 of 36 shingles differ: Jaccard about 0.76
    [hit] = index.check([" ".join(edited)])
    assert (hit is not None) == flagged
    if flagged:
        assert hit.method == "minhash" and 0.5 <= hit.score < 0.95


def test_unreadable_benchmark_is_a_clear_error(tmp_path):
    done = synthgen_cli("decontaminate", str(tmp_path), "--benchmarks", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"))
    assert done.returncode == 1 and "benchmark file not found" in done.stderr and "Traceback" not in done.stderr


def test_cli_writes_clean_and_flagged(tmp_path):
    items = humaneval_items()[:5]
    rows = [{"id": f"bad-{i}", "response": disguise(item, "renamed")} for i, item in enumerate(items)]
    rows += [{"id": f"ok-{i}", "response": text} for i, text in enumerate(clean_texts()[:20])]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    done = synthgen_cli("decontaminate", str(source), "--benchmarks", "humaneval", "--field", "response", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    flagged = pq.read_table(tmp_path / "out" / "flagged.parquet").to_pylist()
    clean = pq.read_table(tmp_path / "out" / "clean.parquet").to_pylist()
    assert sorted(r["id"] for r in flagged) == [f"bad-{i}" for i in range(5)]
    assert len(clean) == 20 and all(r["id"].startswith("ok-") for r in clean)
    assert {r["contamination_item"] for r in flagged} == {item["task_id"] for item in items}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["rows"] == 25 and summary["flagged"] == 5


def _dedup_workflow(path: Path, url: str, seeds: Path) -> Path:
    path.write_text(
        f"""name: dedup_run
seeds: {{path: {seeds}, kind: text, min_chars: 5}}
teacher: {{base_url: {url}, model: scripted, max_retries: 1}}
steps:
  - id: answer
    prompt: "{{{{ seed.text }}}}"
validators:
  decontaminate: {{benchmarks: [humaneval]}}
  dedup: {{jaccard: 0.8}}
messages: [{{role: user, content: "{{{{ seed.text }}}}"}}, {{role: assistant, content: "{{{{ answer }}}}"}}]
output: {{shard_rows: 2, commit_interval_s: 1}}
runtime: {{workers: 2, seeds_per_batch: 2, state_shards: 3}}
"""
    )
    return path


def _answers(messages):
    """Seeds about 'cats' all get one answer, 'leak' seeds get a HumanEval solution, others are unique."""
    prompt = messages[-1]["content"]
    if "cats" in prompt:
        return "Cats sleep for most of the day and hunt at dusk, which saves energy for short bursts of speed."
    if "leak" in prompt:
        return "```python\n" + program(humaneval_items()[0]) + "\n```"
    return f"A unique answer about {prompt} with its own words."


def test_dedup_across_workers_and_resume_and_decontamination_in_a_run(ray_local, teacher, tmp_path):
    teacher.responder = _answers
    seeds = tmp_path / "seeds.jsonl"
    topics = ["cats one", "dogs", "cats two", "leak it", "birds", "cats three", "fish", "cats four"]
    seeds.write_text("\n".join(json.dumps({"text": f"Tell me about {t}"}) for t in topics) + "\n")
    path = _dedup_workflow(tmp_path / "wf.yaml", teacher.url, seeds)
    out = tmp_path / "out"
    synthgen.run(path, out=str(out), limit=4)  # half now, half after a "restart"
    report = synthgen.run(path, out=str(out))
    assert report.status == "done"
    data = pq.read_table(out / "data").to_pylist()
    rejects = pq.read_table(out / "rejects").to_pylist()
    cats = [r for r in data if "Cats sleep" in r["answer"]]
    assert len(cats) == 1, "exactly one of the identical answers is kept"
    duplicates = [r for r in rejects if r["stage"] == "validate:dedup"]
    assert len(duplicates) == 3 and all(r["reason"] == f"dedup: near-duplicate of record {cats[0]['record_id']}" for r in duplicates)
    leaks = [r for r in rejects if r["stage"] == "validate:decontaminate"]
    assert len(leaks) == 1 and "benchmark=humaneval item=HumanEval/0" in leaks[0]["reason"]
    assert len(data) + len(rejects) == len(topics)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(c["benchmark"], c["hits"]) for c in manifest["contamination"]] == [("humaneval", 1)]


def test_benchmarks_by_name_and_unknown_names(tmp_path):
    from synthgen.config.decontamination import known_benchmarks

    assert {"mbpp", "gsm8k"} <= set(known_benchmarks()), "validators/benchmarks.yaml names them"
    path = tmp_path / "wf.yaml"
    path.write_text(
        "name: d\nseeds: {path: " + str(Path(__file__).resolve().parent.parent / "seeds" / "qa.jsonl") + "}\n"
        "steps:\n  - {id: a, prompt: hi}\nvalidators:\n  decontaminate: {benchmarks: [humaneval, humanevl]}\n"
        "messages: [{role: user, content: hi}]\n"
    )
    done = synthgen_cli("check", str(path))
    assert done.returncode == 1 and f"{path}:6:" in done.stderr
    assert "unknown benchmark 'humanevl'; valid names: gsm8k, humaneval, math, mbpp" in done.stderr
