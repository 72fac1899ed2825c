"""The teacher client against every way an endpoint misbehaves (engine level: plain asyncio,
the real openai client, the scripted server over HTTP)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from synthgen.config.workflow import Message, SeedSource, Teacher
from synthgen.engine.registry import Workflow
from synthgen.engine.steps.generate import GenerateStep
from synthgen.engine.cache import STAGING, ResponseCache, discard_staged
from synthgen.engine.gate import AdaptiveGate
from synthgen.engine.teacher import TeacherClient, TeacherRefused, TeacherUnavailable
from synthgen.engine.workflow import WorkflowRunner
from synthgen.engine.records import Seed
from synthgen.scripted_teacher import Fault, Reply

SEED = Seed.create("text", "Photosynthesis turns light into chemical energy in chloroplasts.", "test")


@pytest.fixture(params=["direct", "openai"])
def transport(request) -> str:
    """Every fault is tried on both ways a request is sent (see synthgen/engine/transport.py)."""
    return request.param


def _client(teacher, cache=None, api_key=None, **config) -> TeacherClient:
    settings = {"base_url": teacher.url, "model": "scripted", "max_retries": 2, "backoff_s": 0.05,
                "timeout_s": 5, **config}
    return TeacherClient("default", Teacher(**settings), cache, api_key=api_key)


def _chat(client: TeacherClient, text: str = "hello"):
    async def go():
        try:
            return await client.chat([{"role": "user", "content": text}])
        finally:
            await client.close()

    return asyncio.run(go())


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="status", status=500),
        Fault(kind="status", status=503),
        Fault(kind="drop"),
        Fault(kind="garbage"),
        Fault(kind="slow", delay_s=3.0),
    ],
    ids=["500", "503", "dropped-connection", "garbage-body", "slower-than-timeout"],
)
def test_a_passing_fault_is_retried_to_success(teacher, transport, fault):
    teacher.faults.append(dataclasses.replace(fault))  # a fault counts its uses: one copy per run
    completion = _chat(_client(teacher, timeout_s=1.0, transport=transport))
    assert completion.text == "Answer to: hello"
    assert completion.retries == 1
    assert teacher.total_requests == 2


def test_retry_after_is_honoured(teacher, transport):
    teacher.faults.append(Fault(kind="status", status=429, retry_after=1.5))
    completion = _chat(_client(teacher, transport=transport))
    assert completion.retries == 1
    first, second = teacher.request_times
    assert second - first >= 1.5, "the retry came before Retry-After"


def test_a_teacher_that_stays_down_is_unavailable_not_a_reject(teacher, transport):
    teacher.faults.append(Fault(kind="status", status=502, times=None))
    with pytest.raises(TeacherUnavailable, match="HTTP 502.*after 3 attempts"):
        _chat(_client(teacher, transport=transport))
    assert teacher.total_requests == 3


def test_a_request_out_of_retries_goes_back_to_the_queue_while_the_endpoint_answers_others(teacher, transport):
    """Random faults fail one request through all its retries now and then: while the endpoint
    serves other requests, that request waits and goes again instead of leaving its seed unsettled."""
    client = _client(teacher, transport=transport, max_retries=1, max_backoff_s=0.2)
    teacher.faults.append(Fault(kind="status", status=500, match="unlucky", times=3))

    async def go():
        try:
            await client.chat([{"role": "user", "content": "a lucky one"}])
            return await client.chat([{"role": "user", "content": "the unlucky one"}])
        finally:
            await client.close()

    completion = asyncio.run(go())
    assert completion.text and completion.retries == 3
    assert teacher.requests_containing("unlucky") == 4  # two rounds of two attempts, then one that passed


def test_malformed_answers_are_retried_then_refused(teacher, transport):
    teacher.faults.append(Fault(kind="garbage", times=None))
    with pytest.raises(TeacherRefused, match="malformed response.*after 3 attempts"):
        _chat(_client(teacher, transport=transport))
    teacher.faults.clear()
    teacher.responder = lambda messages: Reply("   ")
    with pytest.raises(TeacherRefused, match="empty answer"):
        _chat(_client(teacher, transport=transport))


def test_client_errors_are_refused_at_once(teacher, transport):
    teacher.faults.append(Fault(kind="status", status=400, times=None))
    with pytest.raises(TeacherRefused, match="HTTP 400"):
        _chat(_client(teacher, transport=transport))
    assert teacher.total_requests == 1


def test_direct_transport_sends_what_the_openai_client_sends(teacher):
    for transport in ("openai", "direct"):
        _chat(_client(teacher, api_key="sk-canary", transport=transport))
    assert teacher.paths == ["/v1/chat/completions"] * 2
    assert teacher.bodies[0] == teacher.bodies[1]
    set_by_http_layer = {"host", "content-length", "accept-encoding", "connection"}
    via_openai, direct = ({k: v for k, v in h.items() if k not in set_by_http_layer} for h in teacher.headers)
    assert direct == via_openai
    assert direct["authorization"] == "Bearer sk-canary" and direct["user-agent"].startswith("AsyncOpenAI/")


def test_cache_answers_the_exact_same_request_only(teacher, tmp_path):
    cache = ResponseCache(tmp_path)
    _chat(_client(teacher, cache=cache))
    again = _chat(_client(teacher, cache=ResponseCache(tmp_path)))
    assert again.cache_hit and teacher.total_requests == 1
    _chat(_client(teacher, cache=ResponseCache(tmp_path), temperature=0.7))
    assert teacher.total_requests == 2, "other sampling parameters are another request"
    entries = sorted(tmp_path.rglob("*.json"))
    assert len(entries) == 2 and not list(tmp_path.rglob("*.tmp"))
    assert all("api_key" not in entry.read_text() and "sk-" not in entry.read_text() for entry in entries)


def test_an_answer_torn_by_a_killed_writer_is_asked_again_and_replaced(teacher, tmp_path):
    _chat(_client(teacher, cache=ResponseCache(tmp_path)))
    [entry] = tmp_path.rglob("*.json")
    whole = entry.read_text()
    entry.write_text(whole[: len(whole) // 2])  # what a writer killed mid-write leaves
    assert not _chat(_client(teacher, cache=ResponseCache(tmp_path))).cache_hit
    assert entry.read_text() == whole and teacher.total_requests == 2
    assert _chat(_client(teacher, cache=ResponseCache(tmp_path))).cache_hit


def test_a_killed_writers_staged_file_is_cleared_and_the_cache_still_writes(teacher, tmp_path):
    cache = ResponseCache(tmp_path)
    partial = tmp_path / STAGING / "batch-record.json.4242.tmp"
    partial.write_text('{"token": "ab')
    discard_staged(tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))
    cache.write_file(tmp_path / "record.json", "{}")
    _chat(_client(teacher, cache=cache))
    assert len(list(tmp_path.rglob("*.json"))) == 2


def _workflow(teacher, **step) -> Workflow:
    return Workflow(
        name="t",
        seeds=SeedSource(path="."),
        teacher=Teacher(base_url=teacher.url, model="scripted", max_retries=1, backoff_s=0.05),
        steps=[GenerateStep(id="answer", prompt="Explain: {{ seed.text }}", **step)],
        messages=[Message(role="assistant", content="{{ answer }}")],
    )


def _run_seed(workflow: Workflow):
    async def go():
        clients = {name: TeacherClient(name, config, None, None) for name, config in workflow.teachers.items()}
        try:
            return await WorkflowRunner(workflow, clients).run(SEED)
        finally:
            for client in clients.values():
                await client.close()

    return asyncio.run(go())


def test_truncated_answer_rejects_by_default_and_continues_when_asked(teacher):
    def responder(messages):
        if messages[-1]["content"].startswith("Continue exactly"):
            return Reply(" and the rest.")
        return Reply("The first part", finish_reason="length")

    teacher.responder = responder
    rejected = _run_seed(_workflow(teacher))
    assert rejected.rejects[0].reason == "answer truncated (finish_reason=length); raise max_tokens"
    assert rejected.rejects[0].raw == "The first part"
    continued = _run_seed(_workflow(teacher, on_length="continue"))
    record = continued.records[0]
    assert record.fields["answer"] == "The first part and the rest."
    assert [t.purpose for t in record.turns] == ["answer", "continuation"]
    continuation_request = teacher.bodies[-1]["messages"]
    assert continuation_request[-2] == {"role": "assistant", "content": "The first part"}


SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}, "a": {"type": "string"}}, "required": ["q", "a"]}


def test_invalid_json_gets_one_repair_request_with_the_error(teacher):
    answers = iter(['{"q": "What?"}', '{"q": "What?", "a": "That."}'])
    teacher.responder = lambda messages: Reply(next(answers))
    result = _run_seed(_workflow(teacher, parse="json", json_schema=SCHEMA))
    record = result.records[0]
    assert json.loads(record.fields["answer"]) == {"q": "What?", "a": "That."}
    assert [t.purpose for t in record.turns] == ["answer", "repair"]
    repair_prompt = teacher.bodies[-1]["messages"][-1]["content"]
    assert "'a' is a required property" in repair_prompt


def test_json_still_invalid_after_repair_is_rejected_with_the_raw_text(teacher):
    teacher.responder = lambda messages: Reply("no json here at all")
    result = _run_seed(_workflow(teacher, parse="json", json_schema=SCHEMA))
    reject = result.rejects[0]
    assert reject.stage == "answer" and "after one repair request" in reject.reason
    assert reject.raw == "no json here at all" and teacher.total_requests == 2


def test_structured_output_endpoints_get_response_format(teacher):
    teacher.responder = lambda messages: Reply('{"q": "x", "a": "y"}')
    workflow = _workflow(teacher, parse="json", json_schema=SCHEMA)
    workflow.teachers["default"].structured_output = True
    assert _run_seed(workflow).records
    assert teacher.bodies[-1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}
    }


def test_adaptive_gate_backs_off_when_latency_climbs_then_recovers(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("synthgen.engine.gate.time.monotonic", lambda: clock[0])

    async def scenario():
        gate = AdaptiveGate(16)
        for _ in range(5):
            gate.observe(0.01)
        for _ in range(20):
            clock[0] += 3
            gate.observe(0.2)
        shrunk = gate.limit
        for _ in range(200):
            clock[0] += 3
            gate.observe(0.01)
        return shrunk, gate.limit

    shrunk, recovered = asyncio.run(scenario())
    assert shrunk < 4
    assert recovered == 16


def test_adaptive_gate_admits_in_order_up_to_its_limit_and_survives_cancelled_waiters():
    async def scenario():
        gate = AdaptiveGate(3)
        peak, order = 0, []

        async def request(index: int, hold_s: float):
            nonlocal peak
            async with gate:
                peak = max(peak, gate.in_flight)
                order.append(index)
                await asyncio.sleep(hold_s)

        holders = [asyncio.create_task(request(i, 0.05)) for i in range(3)]
        await asyncio.sleep(0)
        abandoned = asyncio.create_task(request(99, 0.0))  # waits, then is cancelled while waiting
        waiting = [asyncio.create_task(request(i, 0.01)) for i in range(3, 10)]
        await asyncio.sleep(0.01)
        abandoned.cancel()
        await asyncio.gather(*holders, *waiting)
        return peak, order, gate.in_flight, len(gate._waiters)

    peak, order, in_flight, waiters = asyncio.run(scenario())
    assert peak == 3
    assert order == list(range(10)), "first come, first served; the cancelled waiter never ran"
    assert in_flight == 0 and waiters == 0, "every slot came back"


def test_both_transports_use_the_proxy_the_environment_names(teacher, transport, monkeypatch):
    proxy = teacher.url.rsplit("/v1", 1)[0]  # the scripted server answers absolute-form requests too
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    settings = Teacher(base_url="http://teacher.invalid/v1", model="scripted", max_retries=0, timeout_s=5,
                       transport=transport)
    completion = _chat(TeacherClient("default", settings, None, api_key=None))
    assert completion.text == "Answer to: hello"
    assert teacher.paths == ["http://teacher.invalid/v1/chat/completions"], "the request did not go through the proxy"


def test_the_model_is_recorded_by_name_not_by_file_path(teacher, transport):
    """llama.cpp servers answer with the model file's path; records keep a model name."""
    completion = _chat(_client(teacher, transport=transport, model="/home/me/models/SmolLM2-135M.Q8_0.gguf"))
    assert completion.model == "SmolLM2-135M.Q8_0"
    assert _chat(_client(teacher, transport=transport, model="gpt-4o-mini")).model == "gpt-4o-mini"
