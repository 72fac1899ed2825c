"""The commit protocol: a crash at any point leaves each seed fully committed or not at all."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.engine.records import Record, Reject, SeedResult, Turn
from synthgen.runtime.writer import ShardWriter
from synthgen.storage.layout import commit_markers, record_schema
from synthgen.storage.query import connect


def _result(seed_id: str, accepted: int = 1, rejected: int = 0) -> SeedResult:
    base = {"seed_id": seed_id, "workflow": "w", "workflow_hash": "h", "fields": {"answer": f"a-{seed_id}"},
            "turns": [Turn(step="answer", teacher="default", model="m", prompt_hash="p", tokens_out=3)]}
    return SeedResult(
        seed_id=seed_id,
        records=[Record(record_id=f"{seed_id}-{i}", sample_index=i, **base) for i in range(accepted)],
        rejects=[Reject(record_id=f"{seed_id}-r{i}", stage="answer", reason="bad", **base) for i in range(rejected)],
    )


def test_commit_writes_records_rejects_and_marker(tmp_path):
    writer = ShardWriter(tmp_path, ["answer"], shard_rows=100, workflow_hash="h")
    writer.add(_result("s1", accepted=2))
    writer.add(_result("s2", accepted=0, rejected=1))
    writer.add(_result("s1"))  # a retried task may deliver a seed twice
    assert writer.commit() == "part-000001"
    [marker] = commit_markers(tmp_path)
    data = pq.read_table(tmp_path / marker["files"]["data"])
    rejects = pq.read_table(tmp_path / marker["files"]["rejects"])
    assert marker["files"]["data"].startswith("data/part-000001-")  # a name no other writer uses
    assert data.column("record_id").to_pylist() == ["s1-0", "s1-1"]
    assert data.column("answer").to_pylist() == ["a-s1", "a-s1"]
    assert rejects.column("reason").to_pylist() == ["bad"]
    assert commit_markers(tmp_path)[0]["seed_ids"] == ["s1", "s2"]
    assert writer.commit() is None


def test_reopen_skips_committed_and_numbers_on(tmp_path):
    writer = ShardWriter(tmp_path, ["answer"], shard_rows=100, workflow_hash="h")
    writer.add(_result("s1"))
    writer.commit()
    again = ShardWriter(tmp_path, ["answer"], shard_rows=100, workflow_hash="h")
    again.add(_result("s1"))
    assert again.commit() is None  # committed before: nothing new to commit
    again.add(_result("s2"))
    assert again.commit() == "part-000002"


def test_a_part_without_its_marker_is_never_read_and_is_removed(tmp_path):
    """A writer killed between its parts and its marker (the commit point) left parts that no
    marker lists, and maybe a half-written temporary file: readers skip them, the next writer
    deletes them, and the seed is not committed."""
    writer = ShardWriter(tmp_path, ["answer"], shard_rows=100, workflow_hash="h")
    writer.add(_result("s1"))
    writer.commit()
    [marker] = commit_markers(tmp_path)
    orphan = tmp_path / "data" / "part-000002-0dead000.parquet"
    orphan.write_bytes((tmp_path / marker["files"]["data"]).read_bytes())
    (tmp_path / "_commits" / ".part-000002.json.1a2b3c4d.tmp").write_text("{")
    assert connect(tmp_path).execute("SELECT count(*) FROM data").fetchone()[0] == 1
    again = ShardWriter(tmp_path, ["answer"], shard_rows=100, workflow_hash="h")
    assert not orphan.exists() and not list(tmp_path.rglob("*.tmp"))
    assert [m["seed_ids"] for m in commit_markers(tmp_path)] == [["s1"]]
    again.add(_result("s2"))
    assert again.commit() == "part-000002"
    assert sorted(r[0] for r in connect(tmp_path).execute("SELECT seed_id FROM data").fetchall()) == ["s1", "s2"]


def test_a_commit_writes_its_files_whole_and_its_marker_last(tmp_path, monkeypatch):
    """Every file of a commit is written whole, parts first, the marker last."""
    from synthgen.storage.location import Location

    written: list[str] = []
    original = Location.write_bytes

    def record(self, data):
        written.append(self.uri[len(str(tmp_path)) + 1:])
        original(self, data)

    monkeypatch.setattr(Location, "write_bytes", record)
    writer = ShardWriter(tmp_path, ["answer"], shard_rows=100, workflow_hash="h")
    writer.add(_result("s1", rejected=1))
    writer.commit()
    assert [w.split("/")[0] for w in written] == ["data", "rejects", "_commits"]


def test_should_commit_by_rows_and_by_time(tmp_path):
    writer = ShardWriter(tmp_path, ["answer"], shard_rows=3, workflow_hash="h")
    writer.add(_result("s1", accepted=2))
    assert not writer.should_commit(interval_s=3600)
    writer.add(_result("s2"))
    assert writer.should_commit(interval_s=3600)
    writer.commit()
    writer.add(_result("s3"))
    writer.last_commit -= 10
    assert writer.should_commit(interval_s=5)


def test_shard_schema_is_the_one_earlier_runs_were_written_with():
    """Derived from the record models; pinned so that runs written before still resume and read."""
    turn = pa.struct([("step", pa.string()), ("purpose", pa.string()), ("round", pa.int32()), ("teacher", pa.string()),
                      ("model", pa.string()), ("prompt_hash", pa.string()), ("tokens_in", pa.int64()),
                      ("tokens_out", pa.int64()), ("latency_s", pa.float64()), ("cache_hit", pa.bool_()),
                      ("finish_reason", pa.string()), ("retries", pa.int32())])
    expected = pa.schema([
        ("record_id", pa.string()), ("seed_id", pa.string()), ("sample_index", pa.int32()), ("workflow", pa.string()),
        ("workflow_hash", pa.string()), ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("instruction", pa.string()), ("solution", pa.string()), ("turns", pa.list_(turn)),
        ("verdicts", pa.list_(pa.struct([("validator", pa.string()), ("passed", pa.bool_()), ("detail", pa.string())]))),
        ("teacher_model", pa.string()), ("created_at", pa.timestamp("ms", tz="UTC")), ("node", pa.string()),
    ])
    assert record_schema(["instruction", "solution"], rejects=False) == expected
    rejects = record_schema(["instruction", "solution"], rejects=True)
    assert rejects == pa.schema(list(expected) + [pa.field(n, pa.string()) for n in ("stage", "reason", "raw")])
