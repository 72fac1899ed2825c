"""Seeds stream through Ray Data: the ledger's answers, and runs over many files in which seeds
repeat across files — each seed settled once, the counts in the manifest, a limit that picks
the same seeds every time."""

from __future__ import annotations

import json

import pytest

from conftest import workflow_yaml

from synthgen.engine.records import content_hash
from synthgen.seeds.load import COMMITTED, DUPLICATE, NEW


def test_the_ledger_tells_new_duplicate_and_committed_apart(ray_local, tmp_path):
    from synthgen.runtime.ledger import Ledger
    from synthgen.runtime.writer import ShardWriter
    from synthgen.storage.layout import COMMITS

    ShardWriter(tmp_path, ["answer"], shard_rows=10, workflow_hash="h")  # an empty run directory
    (tmp_path / COMMITS / "part-000001.json").write_text(json.dumps(
        {"part": "part-000001", "workflow_hash": "h", "seed_ids": ["c1"], "records": 0, "rejects": 0,
         "files": {"data": None, "rejects": None}, "committed_at": 0}))
    ledger = Ledger.start(str(tmp_path), shards=2)
    try:
        assert ledger.claim(["a", "b", "c1", "a", "c1"], owner=0, first_place=0) == [NEW, NEW, COMMITTED, DUPLICATE, DUPLICATE]
        # The same task run again reads the same seeds in the same order and gets them back;
        # another task's copy is a duplicate.
        assert ledger.claim(["a", "b", "c1"], owner=0, first_place=0) == [NEW, NEW, COMMITTED]
        assert ledger.claim(["a", "b", "c1", "d"], owner=1, first_place=0) == [DUPLICATE, DUPLICATE, DUPLICATE, NEW]
        assert ledger.settle(["a", "d"]) == {"a", "d"}
        assert ledger.settle(["a", "b", "c1"]) == {"b"}, "a seed settles once; a committed one never again"
        assert ledger.claim(["a"], owner=0, first_place=0) == [COMMITTED]
        assert ledger.totals()[0] == 1
    finally:
        ledger.close()


@pytest.fixture
def many_files(tmp_path):
    """Six JSONL files of Python functions; every third function of a file also appears in the next file."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    texts = [f"def f{i}(x):\n    return x * {i} + {i * 7} - len(str(x))\n" for i in range(60)]
    for index in range(6):
        own = texts[index * 10:(index + 1) * 10]
        repeated = [texts[((index + 1) % 6) * 10 + k] for k in range(0, 10, 3)]
        (folder / f"part-{index}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in own + repeated))
    return folder, texts


def _seed_ids(out) -> list[str]:
    from synthgen.storage.query import connect

    return [row[0] for row in connect(out).execute("SELECT seed_id FROM data UNION ALL SELECT seed_id FROM rejects").fetchall()]


def test_a_run_over_many_files_settles_each_seed_once(ray_local, teacher, many_files, tmp_path):
    import synthgen

    folder, texts = many_files
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=folder, url=teacher.url)
    report = synthgen.run(path, out=str(tmp_path / "out"))
    assert report.status == "done" and report.processed == 60, "a repeated seed was run twice"
    ids = _seed_ids(tmp_path / "out")
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == {content_hash("code", text.strip()) for text in texts}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["seeds"]["input"] == 60 and manifest["seeds"]["duplicates_dropped"] == 24
    assert manifest["seeds"]["pending"] == 0


def test_a_limit_picks_the_same_seeds_every_time(ray_local, teacher, many_files, tmp_path):
    import synthgen

    folder, _ = many_files
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=folder, url=teacher.url)
    first = synthgen.run(path, out=str(tmp_path / "a"), limit=25)
    second = synthgen.run(path, out=str(tmp_path / "b"), limit=25)
    assert first.status == second.status == "done"
    assert sorted(_seed_ids(tmp_path / "a")) == sorted(_seed_ids(tmp_path / "b")) and len(_seed_ids(tmp_path / "a")) == 25
    # A larger limit on the same directory runs only the seeds beyond the first 25.
    sent = teacher.total_requests
    more = synthgen.run(path, out=str(tmp_path / "a"), limit=40)
    assert more.skipped_committed == 25 and more.processed == 15
    assert len(set(_seed_ids(tmp_path / "a"))) == 40 and teacher.total_requests > sent
