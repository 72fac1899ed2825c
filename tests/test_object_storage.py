"""Run directories on object storage: a real S3-protocol server (moto's, started here) takes a
run's shards, markers, manifest, cache and report; a run killed with SIGKILL resumes from it
with nothing lost or repeated; inspect, report, decontaminate and mix read it back. Every run is the real
command in a subprocess, with the standard AWS variables pointing at the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, SHIPPED_CODE_SEEDS, free_port, synthgen_cli, workflow_yaml

from synthgen.config.workflow import SeedSource
from synthgen.scripted_teacher import ScriptedTeacher
from synthgen.seeds.load import load_seeds

SEEDS = load_seeds(SeedSource(path=str(SHIPPED_CODE_SEEDS))).seeds
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free port, a bucket in it, and the environment that reaches it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    try:
        import pyarrow.fs as pafs

        deadline = time.monotonic() + 30
        while True:
            try:
                pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="testing",
                                  secret_key="testing", region="us-east-1", allow_bucket_creation=True).create_dir("bucket")
                break
            except OSError:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        previous = {name: os.environ.get(name) for name in env}
        os.environ.update(env)  # this process reads the bucket back through the same variables
        yield env
    finally:
        server.kill()
        for name, value in locals().get("previous", {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _objects(prefix: str) -> list[str]:
    import pyarrow.fs as pafs

    from synthgen.storage.location import Location

    location = Location.of(prefix)
    infos = location.fs.get_file_info(pafs.FileSelector(location.path, recursive=True, allow_not_found=True))
    return sorted(info.path[len(location.path) + 1:] for info in infos if info.type == pafs.FileType.File)


def _committed_ids(run: str) -> list[str]:
    from synthgen.storage.layout import committed_seed_ids

    return [seed_id for ids in committed_seed_ids(run) for seed_id in ids]


def _record_ids(run: str) -> list[str]:
    from synthgen.storage.query import connect

    return [row[0] for row in connect(run).execute("SELECT seed_id FROM data UNION ALL SELECT seed_id FROM rejects").fetchall()]


def test_a_run_on_s3_lands_whole_and_reads_back(s3, teacher, tmp_path):
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, shard_rows=20)
    run = "s3://bucket/runs/first"
    result = synthgen_cli("run", str(workflow), "--out", run, "--limit", "30", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(tmp_path.glob("s3*")), "a local folder named after the URI"
    objects = _objects(run)
    assert "manifest.json" in objects and "report/index.html" in objects
    markers = [o for o in objects if o.startswith("_commits/")]
    parts = [o for o in objects if o.startswith(("data/", "rejects/"))]
    assert markers and parts and any(o.startswith("cache/") for o in objects)
    ids = _record_ids(run)
    assert sorted(set(ids)) == sorted(_committed_ids(run)) and len(set(_committed_ids(run))) == 30
    inspected = synthgen_cli("inspect", run, "--sql", "SELECT count(DISTINCT seed_id) AS n FROM data", cwd=tmp_path)
    assert inspected.returncode == 0 and "30" in inspected.stdout, inspected.stderr
    summary = synthgen_cli("inspect", run, cwd=tmp_path)
    assert summary.returncode == 0 and "seeds settled   30" in summary.stdout, summary.stderr
    manifest = json.loads(_read(run + "/manifest.json"))
    assert manifest["seeds"]["settled"] == 30 and manifest["status"] == "done"

    sent = teacher.total_requests
    again = synthgen_cli("run", str(workflow), "--out", run, "--limit", "30", cwd=tmp_path)
    assert again.returncode == 0 and teacher.total_requests == sent, "a finished run on S3 asked the teacher again"

    cleaned = synthgen_cli("decontaminate", run, "--benchmarks", "humaneval", "--out", str(tmp_path / "decon"), cwd=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert json.loads((tmp_path / "decon" / "summary.json").read_text())["rows"] == manifest["counts"]["records"]

    recipe = tmp_path / "mix.yaml"
    recipe.write_text(f"name: from_s3\nsources:\n  - {{name: first, path: \"{run}\", weight: 1}}\nshard_rows: 100\n")
    mixed = synthgen_cli("mix", str(recipe), "--out", str(tmp_path / "mixture"), cwd=tmp_path)
    assert mixed.returncode == 0, mixed.stderr
    assert json.loads((tmp_path / "mixture" / "manifest.json").read_text())["rows"] > 0


def _read(uri: str) -> str:
    from synthgen.storage.location import Location

    return Location.of(uri).read_text()


def test_sigkill_mid_run_on_s3_then_resume_loses_and_repeats_nothing(s3, tmp_path):
    from synthgen.storage.location import Location

    run = "s3://bucket/runs/killed"
    with ScriptedTeacher(latency_s=0.15) as teacher:
        workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, shard_rows=2, max_in_flight=1)
        process = subprocess.Popen([sys.executable, "-m", "synthgen", "run", str(workflow), "--out", run], cwd=REPO,
                                   env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while len([o for o in _objects(run) if o.startswith("_commits/")]) < 3:
                assert process.poll() is None, f"run ended before 3 commits: {process.stderr.read()}"
                assert time.monotonic() < deadline, "no commits in time"
                time.sleep(0.1)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            subprocess.run(["pkill", "-9", "-s", str(process.pid)], check=False)
        committed = set(_committed_ids(run))
        assert 0 < len(committed) < len(SEEDS)
        # What a writer killed between its parts and its marker leaves: a part no marker lists.
        orphan = Location.of(run) / "data" / "part-999999-deadbeef.parquet"
        orphan.write_bytes(Location.of(run + "/" + next(o for o in _objects(run) if o.startswith("data/"))).read_bytes())
        assert len(_record_ids(run)) == len(set(_record_ids(run))), "a reader saw an uncommitted part"

        teacher.requests.clear()
        resumed = subprocess.run([sys.executable, "-m", "synthgen", "run", str(workflow), "--out", run], cwd=REPO,
                                 env=os.environ.copy(), capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        for seed in SEEDS:
            if seed.seed_id in committed:
                assert teacher.requests_containing(seed.text[:120]) == 0, "a committed seed was paid for again"
    ids = _record_ids(run)
    assert len(ids) == len(set(ids)), "a seed was written twice"
    assert set(ids) == {seed.seed_id for seed in SEEDS}, "a seed was lost"
    assert sorted(_committed_ids(run)) == sorted(ids)
    assert "data/part-999999-deadbeef.parquet" not in _objects(run), "the uncommitted part was left behind"


def test_an_object_store_that_does_not_answer_is_a_clear_error(tmp_path):
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    for args in [("inspect", "s3://bucket/run"), ("report", "s3://bucket/run")]:
        result = synthgen_cli(*args, env=env, cwd=tmp_path)
        assert result.returncode == 1 and "s3://bucket/run: the object store did not answer" in result.stderr, result.stderr
        assert "AWS_ENDPOINT_URL" in result.stderr and "Traceback" not in result.stderr
