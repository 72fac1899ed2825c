"""teacher.mode: batch — requests through the OpenAI Batch API (/v1/files + /v1/batches) of a
scripted endpoint, with the real openai client over HTTP: gathered per step, answered from the
downloaded output, cached, and exactly once across a kill -9 between submit and completion."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import SHIPPED_CODE_SEEDS, synthgen_cli, workflow_yaml
from test_crash import _assert_exactly_once, _cleanup_session, _start

from synthgen.config.workflow import BatchOptions, Teacher
from synthgen.engine.cache import ResponseCache
from synthgen.engine.teacher import TeacherClient, TeacherRefused
from synthgen.scripted_batches import ScriptedBatchAPI
from synthgen.scripted_teacher import ScriptedTeacher
from synthgen.storage.query import connect

FAST = BatchOptions(collect_s=0.2, poll_s=0.05)


@pytest.fixture
def batch_api():
    with ScriptedTeacher(lambda messages: f"answer to {messages[-1]['content']}") as server:
        yield ScriptedBatchAPI(server, latency_s=0.1)


def _client(api: ScriptedBatchAPI, cache_dir: Path, **options) -> TeacherClient:
    config = Teacher(base_url=api.teacher.url, model="scripted", mode="batch", max_retries=2, backoff_s=0.05,
                     batch=FAST.model_copy(update=options))
    return TeacherClient("main", config, ResponseCache(cache_dir), api_key="sk-batch-secret")


def _ask(client: TeacherClient, prompts: list[str]) -> list:
    async def main():
        try:
            return await asyncio.gather(*(client.chat([{"role": "user", "content": p}]) for p in prompts),
                                        return_exceptions=True)
        finally:
            await client.close()

    return asyncio.run(main())


def _all_custom_ids(api: ScriptedBatchAPI) -> list[str]:
    return [custom_id for batch in api.created for custom_id in batch.custom_ids]


def _abandon_in_progress(api: ScriptedBatchAPI, client: TeacherClient, prompts: list[str]) -> None:
    """Ask, and let the client die (cancelled, closed) once its batch is created and held in progress."""
    api.hold = True
    before = len(api.created)

    async def abandon():
        asking = asyncio.gather(*(client.chat([{"role": "user", "content": p}]) for p in prompts))
        while len(api.created) == before:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
        await client.close()

    asyncio.run(abandon())


def test_requests_asked_together_go_in_one_batch_and_are_cached(batch_api, tmp_path):
    prompts = [f"question {i}" for i in range(5)]
    answers = _ask(_client(batch_api, tmp_path), prompts)
    assert [a.text for a in answers] == [f"answer to {p}" for p in prompts]
    assert len(batch_api.created) == 1 and len(batch_api.created[0].custom_ids) == 5
    assert batch_api.created[0].endpoint == "/v1/chat/completions"
    assert batch_api.teacher.total_requests == 0, "nothing went through the online endpoint"
    assert all(not a.cache_hit and a.tokens_out > 0 for a in answers)
    again = _ask(_client(batch_api, tmp_path), prompts)
    assert [a.text for a in again] == [a.text for a in answers] and all(a.cache_hit for a in again)
    assert len(batch_api.created) == 1, "a cached answer was paid for again"


def test_candidates_with_the_same_prompt_are_separate_lines(batch_api, tmp_path):
    """Same body, other variant: two requests, never one line answering both."""
    config = Teacher(base_url=batch_api.teacher.url, model="scripted", mode="batch", seed=None, batch=FAST)
    client = TeacherClient("main", config, ResponseCache(tmp_path), api_key=None)

    async def main():
        try:
            messages = [{"role": "user", "content": "one prompt"}]
            return await asyncio.gather(*(client.chat(messages, variant=v) for v in range(3)))
        finally:
            await client.close()

    asyncio.run(main())
    assert len(set(_all_custom_ids(batch_api))) == 3


def test_a_restarted_client_waits_for_the_recorded_batch_instead_of_sending_again(batch_api, tmp_path):
    _abandon_in_progress(batch_api, _client(batch_api, tmp_path), [f"q{i}" for i in range(4)])
    assert len(batch_api.created) == 1
    batch_api.hold = False
    answers = _ask(_client(batch_api, tmp_path), [f"q{i}" for i in range(4)])
    assert [a.text for a in answers] == [f"answer to q{i}" for i in range(4)]
    assert len(batch_api.created) == 1, "the restarted client sent the requests again"


def test_a_batch_whose_id_was_never_recorded_is_found_by_its_token(batch_api, tmp_path):
    """Killed between the batch's creation and writing its id: the token in the batch's metadata
    finds it among the provider's batches (listed in pages)."""
    _ask(_client(batch_api, tmp_path / "other"), [f"filler {i}" for i in range(3)])  # another batch, listed first
    _abandon_in_progress(batch_api, _client(batch_api, tmp_path / "run"), [f"q{i}" for i in range(3)])
    [record] = (tmp_path / "run" / "batches").glob("*.json")
    entry = json.loads(record.read_text())
    assert entry["batch_id"] and entry["keys"]
    record.write_text(json.dumps({**entry, "batch_id": None}))
    batch_api.hold = False
    answers = _ask(_client(batch_api, tmp_path / "run"), [f"q{i}" for i in range(3)])
    assert [a.text for a in answers] == [f"answer to q{i}" for i in range(3)]
    assert len(batch_api.created) == 2


def test_requests_an_expired_batch_left_unanswered_go_in_the_next_batch(batch_api, tmp_path):
    batch_api.expire_next = 2
    answers = _ask(_client(batch_api, tmp_path), [f"q{i}" for i in range(5)])
    assert [a.text for a in answers] == [f"answer to q{i}" for i in range(5)]
    first, second = batch_api.created
    assert len(first.custom_ids) == 5 and sorted(second.custom_ids) == sorted(first.custom_ids[2:])
    assert batch_api.lines_answered == 5, "an answered request was asked again"


def test_a_failed_batch_refuses_its_requests_with_the_providers_reason(batch_api, tmp_path):
    batch_api.fail_next = "model 'scripted' is not available for batches"
    [outcome] = _ask(_client(batch_api, tmp_path, poll_s=0.02), ["q"])
    assert isinstance(outcome, TeacherRefused)
    assert "is not available for batches" in str(outcome) and "failed" in str(outcome)


def test_refused_lines_reject_and_server_errors_are_sent_again(tmp_path):
    calls = collections.Counter()

    def responder(messages):
        from synthgen.scripted_teacher import Reply
        prompt = messages[-1]["content"]
        calls[prompt] += 1
        if prompt == "refused":
            return Reply("content policy", status=400)
        if prompt == "flaky" and calls[prompt] == 1:
            return Reply("overloaded", status=500)
        return f"answer to {prompt}"

    with ScriptedTeacher(responder) as server:
        api = ScriptedBatchAPI(server, latency_s=0.05)
        refused, flaky = _ask(_client(api, tmp_path), ["refused", "flaky"])
    assert isinstance(refused, TeacherRefused) and "content policy" in str(refused)
    assert flaky.text == "answer to flaky" and flaky.retries == 1
    assert len(api.created) == 2 and api.created[1].custom_ids == [api.created[0].custom_ids[1]]


def _batch_workflow(tmp_path: Path, url: str) -> Path:
    return workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=url, mode="batch",
                         max_in_flight=256, batch="{collect_s: 0.5, poll_s: 0.1}",
                         price_per_million_tokens="{input: 2.0, output: 8.0}")


def test_a_multi_step_workflow_runs_in_batches_step_by_step(tmp_path):
    with ScriptedTeacher() as server:
        api = ScriptedBatchAPI(server, latency_s=0.3)
        run = synthgen_cli("run", str(_batch_workflow(tmp_path, server.url)), "--out", str(tmp_path / "out"))
        assert run.returncode == 0, run.stderr
        assert server.total_requests == 0
        batches = api.created
    seeds = connect(tmp_path / "out").execute("SELECT count(*) FROM data").fetchone()[0]
    assert seeds > 10
    steps = [{("CODE for" in line["body"]["messages"][-1]["content"]) for line in batch.lines} for batch in batches]
    assert all(len(kinds) == 1 for kinds in steps), "a batch mixed the requests of two steps"
    workers = os.cpu_count() or 2
    assert len(batches) <= 2 * workers, f"{len(batches)} batches for 2 steps"
    assert len(_all_custom_ids(api)) == len(set(_all_custom_ids(api))) == 2 * seeds
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    [teacher] = manifest["teacher"]["per_teacher"]
    online = (teacher["paid_tokens_in"] * 2.0 + teacher["paid_tokens_out"] * 8.0) / 1e6
    assert teacher["cost_usd"] == pytest.approx(online / 2, rel=1e-3), "batch price is half the online price"
    assert "sk-" not in json.dumps(manifest)


def test_kill_9_between_submit_and_completion_then_resume_sends_nothing_twice(tmp_path):
    out = tmp_path / "out"
    with ScriptedTeacher() as server:
        api = ScriptedBatchAPI(server, latency_s=0.2)
        api.hold = True
        workflow = _batch_workflow(tmp_path, server.url)
        process = _start(workflow, out)
        try:
            deadline = time.monotonic() + 120
            while not list((out / "cache" / "batches").glob("*.json")) or not api.created \
                    or any(not json.loads(p.read_text())["batch_id"] for p in (out / "cache" / "batches").glob("*.json")):
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "no batch submitted"
                time.sleep(0.05)
            time.sleep(1.0)  # every worker's first batch is out
            submitted = {custom_id for batch in api.created for custom_id in batch.custom_ids}
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            _cleanup_session(process)
        assert api.lines_answered == 0
        api.hold = False
        resumed = synthgen_cli("run", str(workflow), "--out", str(out))
        assert resumed.returncode == 0, resumed.stderr
        ids = _all_custom_ids(api)
    assert len(ids) == len(set(ids)), "a request was sent in two batches"
    assert submitted <= set(ids)
    assert api.lines_answered == len(ids)
    _assert_exactly_once(out)


def test_an_endpoint_without_a_batch_api_is_a_clear_error_before_any_work(teacher, tmp_path):
    run = synthgen_cli("run", str(_batch_workflow(tmp_path, teacher.url)), "--out", str(tmp_path / "out"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"serves no Batch API (tried GET {teacher.url}/batches?limit=1: HTTP 404)" in run.stderr
    assert teacher.total_requests == 0
