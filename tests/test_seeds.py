"""Seed loading from every supported source, stable ids, dedup, and clear errors."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO

from synthgen.config.workflow import SeedSource
from synthgen.config.errors import UserError
from synthgen.seeds.load import load_seeds


def test_shipped_corpora_meet_their_promised_sizes():
    code = load_seeds(SeedSource(path=str(REPO / "seeds" / "python")))
    text = load_seeds(SeedSource(path=str(REPO / "seeds" / "text"), chunk_chars=1000))
    qa = load_seeds(SeedSource(path=str(REPO / "seeds" / "qa.jsonl")))
    assert len(code.seeds) >= 60 and {s.kind for s in code.seeds} == {"code"}
    assert all(s.meta.get("docstring") for s in code.seeds), "every shipped function has a docstring"
    assert len(text.seeds) >= 40 and {s.kind for s in text.seeds} == {"text"}
    assert len(qa.seeds) >= 20 and {s.kind for s in qa.seeds} == {"qa"}
    assert not (code.skipped or text.skipped or qa.skipped)


def test_python_folder_gives_one_seed_per_top_level_def_with_decorators(tmp_path):
    (tmp_path / "a.py").write_text(
        "import functools\n\n\n@functools.lru_cache\ndef cached(n):\n    '''Cached.'''\n    return n * 2 + 1\n\n\n"
        "class Box:\n    '''A box.'''\n\n    def method(self):\n        return 'inside the class, not a seed'\n\n\n"
        "x = 1\n"
    )
    (tmp_path / "broken.py").write_text("def nope(:\n")
    result = load_seeds(SeedSource(path=str(tmp_path)))
    names = [s.meta["name"] for s in result.seeds]
    assert names == ["cached", "Box"]
    # The imports it uses come along, so the seed runs on its own.
    assert result.seeds[0].text.startswith("import functools\n\n@functools.lru_cache\ndef cached(n):")
    assert result.seeds[0].meta["lines"] == "4-7"
    assert len(result.skipped) == 1 and "broken.py:1" in result.skipped[0]


def test_python_seed_carries_the_helpers_and_imports_it_uses(tmp_path):
    (tmp_path / "m.py").write_text(
        "import math\nimport os\n\n\ndef _half(x):\n    return x / 2\n\n\n"
        "def radius(area):\n    \"\"\"Radius of a circle of this area.\"\"\"\n    return math.sqrt(_half(2 * area) / math.pi)\n"
    )
    radius = next(s for s in load_seeds(SeedSource(path=str(tmp_path))).seeds if s.meta["name"] == "radius")
    assert radius.text.startswith("import math\n\ndef _half(x):") and "import os" not in radius.text
    namespace: dict = {}
    exec(radius.text, namespace)
    assert abs(namespace["radius"](math.pi) - 1.0) < 1e-9


def test_seed_ids_are_content_hashes_and_duplicates_are_dropped(tmp_path):
    rows = [{"text": "The same passage about photosynthesis and light."}] * 2 + [{"text": "Another passage on gravity, mass and the weight of things."}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    first = load_seeds(SeedSource(path=str(tmp_path / "a.jsonl")))
    assert len(first.seeds) == 2 and first.duplicates == 1
    (tmp_path / "b.jsonl").write_text(json.dumps(rows[2]) + "\n")
    again = load_seeds(SeedSource(path=str(tmp_path / "b.jsonl")))
    assert again.seeds[0].seed_id == first.seeds[1].seed_id


def test_jsonl_field_mapping_meta_and_unreadable_lines(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        json.dumps({"body": "A long enough passage about the water cycle.", "topic": "science", "uid": 7}) + "\n"
        "{not json\n"
        + json.dumps({"other": "no body field here"}) + "\n"
    )
    result = load_seeds(SeedSource(path=str(path), text_field="body", meta_fields=["topic"], id_field="uid"))
    assert len(result.seeds) == 1
    assert result.seeds[0].meta == {"topic": "science", "source_id": "7"}
    assert result.seeds[0].source == f"{path}:1"
    assert [p.split(": ", 1)[0] for p in result.skipped] == [f"{path}:2", f"{path}:3"]


def test_parquet_qa_pairs(tmp_path):
    table = pa.table({"q": ["What is 2 + 2?", "Name a prime."], "a": ["4", "7"]})
    pq.write_table(table, tmp_path / "qa.parquet")
    result = load_seeds(SeedSource(path=str(tmp_path / "qa.parquet"), question_field="q", answer_field="a"))
    assert [s.kind for s in result.seeds] == ["qa", "qa"]
    assert result.seeds[0].meta["question"] == "What is 2 + 2?"
    assert result.seeds[0].text == "Question: What is 2 + 2?\n\nAnswer: 4"


def test_markdown_chunks_keep_headings_and_respect_target(tmp_path):
    paragraph = "Sentence about a topic that matters for the reader. " * 6
    (tmp_path / "notes.md").write_text(f"# Book\n\n## Alpha\n\n{paragraph}\n\n{paragraph}\n\n{paragraph}\n\n## Beta\n\n{paragraph}\n")
    result = load_seeds(SeedSource(path=str(tmp_path), chunk_chars=700))
    titles = [s.meta.get("title") for s in result.seeds]
    assert titles == ["Alpha", "Alpha", "Beta"]
    assert all(s.text.startswith(f"## {s.meta['title']}\n\n") for s in result.seeds)
    assert result.seeds[0].text.count(paragraph.strip()) == 2


def test_limit(tmp_path):
    result = load_seeds(SeedSource(path=str(REPO / "seeds" / "python"), limit=7))
    assert len(result.seeds) == 7


def test_missing_path_and_empty_set_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="seed path not found: .*nowhere"):
        load_seeds(SeedSource(path=str(tmp_path / "nowhere")))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="no seeds found in"):
        load_seeds(SeedSource(path=str(tmp_path / "empty.jsonl")))


def test_seeds_screened_for_near_duplicates_and_benchmark_leaks(tmp_path):
    from planted import disguise, humaneval_items

    base = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside the chloroplasts of a leaf cell."
    rows = [
        {"text": base},
        {"text": base.replace("leaf cell", "leaf cell, as every biology student learns early")},
        {"text": disguise(humaneval_items()[3], "renamed")},
        {"text": "Gravity pulls every mass towards every other mass, weaker with the square of the distance between them."},
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    source = SeedSource(path=str(tmp_path / "s.jsonl"), near_dedup=0.5, decontaminate={"benchmarks": ["humaneval"]})
    result = load_seeds(source)
    assert [s.text for s in result.seeds] == [rows[0]["text"], rows[3]["text"]]
    assert any("near-duplicate of seed " + result.seeds[0].seed_id in reason for reason in result.skipped)
    assert any("contaminated seed (benchmark=humaneval item=HumanEval/3" in reason for reason in result.skipped)
