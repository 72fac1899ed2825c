"""Mixtures: shares, determinism, filters and caps, clear errors, bounded memory, interop; and
the run report rendered by a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import synthgen_cli, workflow_yaml

import synthgen
from synthgen.config.errors import UserError
from synthgen.pipelines.mix import build_mixture
from synthgen.config.recipe import Recipe, load_recipe
from synthgen.interface.report import SECTIONS, write_report

# name -> (rows, words per answer): four sources of known, different sizes
SOURCES = {"web": (400, 30), "synthetic": (300, 50), "code": (500, 12), "acquired": (200, 20)}


@pytest.fixture(scope="module")
def source_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    paths = {}
    for name, (rows, words) in SOURCES.items():
        records = [{"question": f"{name} question {i}", "answer": " ".join([f"{name}{i}"] * words), "score": i % 10}
                   for i in range(rows)]
        if name == "code":  # one source as Parquet, the others JSONL
            paths[name] = folder / f"{name}.parquet"
            pq.write_table(pa.Table.from_pylist(records), paths[name])
        else:
            paths[name] = folder / f"{name}.jsonl"
            paths[name].write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return paths


def recipe(paths, weight_by="tokens", **extra) -> Recipe:
    weights = {"web": 30, "synthetic": 40, "code": 20, "acquired": 10}
    sources = [{"name": n, "path": str(p), "weight": weights[n], "max_repeat": 3,
                "columns": {"prompt": "question", "completion": "answer"}} for n, p in paths.items()]
    return Recipe.model_validate({"name": "t", "sources": sources, "weight_by": weight_by, "tokenizer": "whitespace",
                                  "shard_rows": 250, **extra})


def test_every_shard_is_a_uniform_sample_even_with_up_sampled_sources(tmp_path):
    """12, 3,000 and 400 rows weighted 40/40/20 by rows: the small source is repeated ~100x. Each
    shard's share of each source stays within sampling noise of its target (binomial, 4.5 sigma),
    and the manifest says how often rows repeat."""
    sizes = {"tiny": 12, "large": 3000, "medium": 400}
    weights = {"tiny": 40, "large": 40, "medium": 20}
    sources = []
    for name, rows in sizes.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"q": f"{name} {i}", "a": f"answer {i}"}) + "\n" for i in range(rows)))
        sources.append({"name": name, "path": str(path), "weight": weights[name], "max_repeat": 1000,
                        "columns": {"prompt": "q", "completion": "a"}})
    spec = Recipe.model_validate({"name": "u", "sources": sources, "weight_by": "rows", "tokenizer": "whitespace",
                                  "shard_rows": 500, "total": 7500})
    manifest = build_mixture(spec, tmp_path / "mix")
    by_name = {s["name"]: s for s in manifest["sources"]}
    assert by_name["tiny"]["unique_rows"] == 12 and by_name["tiny"]["max_repetition"] == 250
    assert by_name["large"]["max_repetition"] == 1
    worst = 0.0
    for shard in manifest["shards"]:
        names = pq.read_table(tmp_path / "mix" / shard["file"]).column("source").to_pylist()
        for name, weight in weights.items():
            target = weight / 100
            sigma = (target * (1 - target) / len(names)) ** 0.5
            worst = max(worst, abs(names.count(name) / len(names) - target) / sigma)
    assert worst < 4.5, f"a shard is {worst:.1f} sigma off its target composition"


@pytest.mark.parametrize("weight_by", ["tokens", "rows"])
def test_achieved_shares_match_the_recipe(source_files, tmp_path, weight_by):
    manifest = build_mixture(recipe(source_files, weight_by, format="prompt_completion"), tmp_path / "mix")
    for source in manifest["sources"]:
        achieved = source[f"achieved_share_{weight_by}"]
        assert abs(achieved - source["target_share"]) <= 0.01, source
    table = pq.read_table(tmp_path / "mix" / "data")
    assert table.num_rows == manifest["rows"] == sum(s["rows_taken"] for s in manifest["sources"])
    counts = {s["name"]: s["rows_taken"] for s in manifest["sources"]}
    read_back = duckdb.sql(f"SELECT source, count(*) FROM read_parquet('{tmp_path}/mix/data/*.parquet') GROUP BY 1").fetchall()
    assert dict(read_back) == counts
    first = table.slice(0, 1).to_pylist()[0]
    assert first["prompt"][0]["role"] == "user" and first["completion"][0]["role"] == "assistant"
    sources_in_first_shard = set(pq.read_table(tmp_path / "mix" / "data" / "part-00000.parquet").column("source").to_pylist())
    assert len(sources_in_first_shard) == 4, "globally shuffled, not one source after another"


def test_same_recipe_same_bytes(source_files, tmp_path):
    first = build_mixture(recipe(source_files, format="text"), tmp_path / "a")
    second = build_mixture(recipe(source_files, format="text"), tmp_path / "b")
    assert first["shards"] == second["shards"]
    for shard in first["shards"]:
        assert (tmp_path / "a" / shard["file"]).read_bytes() == (tmp_path / "b" / shard["file"]).read_bytes()
    text = pq.read_table(tmp_path / "a" / "data" / "part-00000.parquet").column("text")[0].as_py()
    assert text.startswith("<|im_start|>user\n") and "<|im_start|>assistant\n" in text and text.endswith("<|im_end|>\n")
    changed = build_mixture(recipe(source_files, format="text", seed=1), tmp_path / "c")
    assert (tmp_path / "c" / "data" / "part-00000.parquet").read_bytes() != (tmp_path / "a" / "data" / "part-00000.parquet").read_bytes()
    assert changed["rows"] == first["rows"]


def test_filters_and_caps(source_files, tmp_path):
    spec = recipe(source_files, weight_by="rows", format="prompt_completion")
    spec.sources[0].filter = "score >= 5"
    spec.sources[1].max_rows = 120
    manifest = build_mixture(spec, tmp_path / "mix")
    web, synthetic = manifest["sources"][0], manifest["sources"][1]
    assert web["rows_available"] == 200
    assert synthetic["rows_taken"] <= 120
    rows = duckdb.sql(f"SELECT prompt[1].content AS q FROM read_parquet('{tmp_path}/mix/data/*.parquet') WHERE source = 'web'").fetchall()
    scores = {int(q.split()[-1]) % 10 for (q,) in rows}
    assert scores <= {5, 6, 7, 8, 9}


def test_bad_recipes_say_what_is_wrong(source_files, tmp_path):
    missing = recipe(source_files)
    missing.sources[2].path = str(tmp_path / "nowhere.jsonl")
    with pytest.raises(UserError, match="source code: path not found"):
        build_mixture(missing, tmp_path / "m1")
    too_big = recipe(source_files, total=10**7)
    with pytest.raises(UserError, match="weights cannot be met: source \\w+ needs"):
        build_mixture(too_big, tmp_path / "m2")
    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\nsources:\n  - name: a\n    path: {source_files['web']}\n    weight: 0\n"
                    "    columns: {prompt: question, completion: answer}\n")
    done = synthgen_cli("mix", str(path), "--out", str(tmp_path / "m3"))
    assert done.returncode == 1 and f"{path}:5: sources[0].weight" in done.stderr and "greater than 0" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(UserError, match="unknown key 'wieght'"):
        path.write_text(path.read_text().replace("weight: 0", "wieght: 1"))
        load_recipe(path)


def test_mixture_larger_than_the_memory_cap(tmp_path):
    """About 150 MB of rows through a 64 MB DuckDB limit: staging streams, the sort spills."""
    big = tmp_path / "big.parquet"
    with pq.ParquetWriter(big, pa.schema([("q", pa.string()), ("a", pa.string())])) as writer:
        for part in range(30):
            writer.write_table(pa.table({"q": [f"q{part}-{i}" for i in range(10_000)], "a": ["word " * 100] * 10_000}))
    spec = Recipe.model_validate({"name": "big", "tokenizer": "whitespace", "memory_mb": 64, "shard_rows": 50_000,
                                  "sources": [{"name": "big", "path": str(big), "weight": 1,
                                               "columns": {"prompt": "q", "completion": "a"}}]})
    manifest = build_mixture(spec, tmp_path / "mix")
    assert manifest["rows"] == 300_000 and len(manifest["shards"]) == 6


def test_offline_tokenizer_and_interop(source_files, tmp_path):
    spec = recipe(source_files, format="messages", tokenizer="embedded")
    manifest = build_mixture(spec, tmp_path / "mix")
    assert "GGUF vocabulary" in manifest["tokenizer"]
    assert pq.read_table(tmp_path / "mix" / "data").num_rows == manifest["rows"]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/mix/data/*.parquet')").fetchall() == [(manifest["rows"],)]
    import datasets  # in the test extra: a trainer's loader reads the shards as they are

    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "mix" / "data" / "*.parquet"), split="train")
    assert len(loaded) == manifest["rows"]


def test_report_of_a_real_run_renders_in_headless_chromium(ray_local, teacher, tmp_path):
    from conftest import SHIPPED_CODE_SEEDS

    from synthgen.scripted_teacher import echo_responder

    # Some answers without code: the run has rejects, so every section has something to show.
    teacher.responder = lambda m: "No code today." if "CODE" in m[-1]["content"] and "sort" in m[-1]["content"] else echo_responder(m)
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    out = tmp_path / "out"
    synthgen.run(path, out=str(out), limit=12)
    page = write_report(out)
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (tests/setup.sh installs it where it has root and apt)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.local.as_uri()], capture_output=True, text=True, timeout=120).stdout
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom, section
    assert dom.count("<svg") >= 4, "plots are inline"
    screenshot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1000,2500", f"--screenshot={screenshot}", page.local.as_uri()],
                   capture_output=True, timeout=120)
    assert screenshot.stat().st_size > 20_000
    assert (out / "report" / "funnel.svg").stat().st_size > 1000
