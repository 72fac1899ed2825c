"""Pivotal Token Search: against the scripted policy (exact P(success) at every prefix, planted
pivots and near-misses) over real HTTP in each way servers continue a prefix and cut tokens;
the pairs; a teacher that cannot continue; kill -9 mid-search and resume; and the continuation
probe against the real embedded llama.cpp server."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from synthgen.config.workflow import Teacher
from synthgen.engine.cache import ResponseCache
from synthgen.engine.continuation import Continuer, _joined_pieces
from synthgen.engine.records import Seed
from synthgen.engine.registry import load_workflow
from synthgen.engine.teacher import TeacherClient
from synthgen.engine.tokens import splitter
from synthgen.engine.sandbox import open_sandbox
from synthgen.engine.validators.base import Services
from synthgen.engine.workflow import run_seeds
from synthgen.scripted_policy import MARK, PolicyServer, pieces, plant, search_workflow, truth
from synthgen.storage.query import connect

def problems(count: int, length: int = 120, seed: int = 0):
    return [plant(random.Random(seed + number), length=length, pivots=2, near_misses=3) for number in range(count)]


def seeds_of(planted) -> list[Seed]:
    return [Seed.create("qa", f"Work it out.\n{MARK}{p.to_json()}", "test", {"answer": "42"}) for p in planted]


def workflow_file(folder: Path, url: str, style: str = "auto", **search: object) -> Path:
    path = folder / "w.yaml"
    path.write_text(search_workflow(url, style=style, **search))
    return path


def run_engine(path: Path, seeds: list[Seed], cache: Path | None = None):
    return asyncio.run(run_seeds(load_workflow(path), seeds, ResponseCache(cache) if cache else None))


SERVERS = {
    # vLLM: continue_final_message, /tokenize gives ids only (pieces through /detokenize)
    "chat_prefill, ids + detokenize": (dict(pieces_in_tokenize=False, completions=False), "chat_prefill"),
    # llama.cpp: a continued final assistant message comes back with the prefix repeated
    "chat_prefill echoing the prefix, pieces": (dict(echo_prefix=True), "auto"),
    # no prefill (refused like OpenAI's API): auto falls back to /v1/completions + /apply-template
    "completions found by auto": (dict(prefill=False), "auto"),
}


@pytest.mark.parametrize("server_kind", sorted(SERVERS))
def test_search_finds_every_planted_pivot_and_no_near_miss(tmp_path, server_kind):
    options, style = SERVERS[server_kind]
    planted = problems(3)
    with PolicyServer(**options) as server:
        results = run_engine(workflow_file(tmp_path, server.url, style), seeds_of(planted))
        if not options.get("prefill", True):  # one refused probe, then every sample by /v1/completions
            assert sum("continue_final_message" in b for b in server.generations()) == 1
            assert sum("prompt" in b for b in server.generations()) > 100
    for problem, result in zip(planted, results):
        assert_planted_pivots_found(problem, result)


def test_the_exec_oracle_runs_code_answers_in_the_sandbox(tmp_path):
    """Code answers (a Python block asserting the answer) judged by running them: P from the sandbox."""
    planted = [plant(random.Random(11 + number), length=40, pivots=1, near_misses=1, code=True) for number in range(2)]
    with PolicyServer() as server, open_sandbox("bwrap", slots=2) as pool:
        workflow = load_workflow(workflow_file(tmp_path, server.url, oracle="exec", samples=64))
        results = asyncio.run(run_seeds(workflow, seeds_of(planted), services=Services(sandbox=lambda: pool)))
    for problem, result in zip(planted, results):
        assert_planted_pivots_found(problem, result)
        assert result.records[0].fields["solution"].rstrip().endswith("```")


def assert_planted_pivots_found(problem, result) -> None:
    """Every planted pivot (exact |dP| >= 0.3) found, no near-miss, pairs that truly contrast."""
    assert result.records, [r.reason for r in result.rejects]
    answer = result.records[0].fields["solution"]
    exact = truth(problem, answer)
    changes = [exact[i + 1] - exact[i] for i in range(len(exact) - 1)]
    reported = {p["position"] for p in json.loads(result.records[0].fields["pivots"])}
    assert {i for i, c in enumerate(changes) if abs(c) >= 0.3} <= reported, "a planted pivot was missed"
    assert not {i for i in reported if abs(changes[i]) < 0.1}, "a near-miss or a filler token was reported"
    cut = pieces(answer)
    for record in result.records:
        prefix = record.prompt[-1].content if record.prompt[-1].role == "assistant" else ""
        assert record.prompt[0].role == "user" and MARK in record.prompt[0].content
        assert answer.startswith(prefix) and prefix == "".join(cut[:len(pieces(prefix))])
        chosen, rejected = record.chosen[0].content, record.rejected[0].content
        assert chosen != rejected and answer[len(prefix):].startswith((chosen, rejected))
        # The chosen token truly raises P (the policy's exact value), by the threshold.
        assert problem.p_of_prefix(prefix + chosen) - problem.p_of_prefix(prefix + rejected) >= 0.2
        assert record.margin == pytest.approx(record.score_chosen - record.score_rejected)
        position = len(pieces(prefix))
        assert record.p_before == pytest.approx(exact[position], abs=0.15)
        assert record.p_after == pytest.approx(exact[position + 1], abs=0.15)
        assert record.delta == pytest.approx(record.p_after - record.p_before) and record.samples > 0


def test_samples_are_cached_and_the_search_is_budget_aware(tmp_path):
    """A rerun pays nothing; the search draws far fewer samples than a scan of every prefix;
    and it draws them where the decision is hard (not `samples` everywhere)."""
    planted = problems(2)
    seeds = seeds_of(planted)
    with PolicyServer() as server:
        path = workflow_file(tmp_path, server.url, samples=128, min_samples=16)
        first = run_engine(path, seeds, tmp_path / "cache")
        paid = len(server.generations())
        again = run_engine(path, seeds, tmp_path / "cache")
        assert len(server.generations()) == paid, "a rerun paid for samples again"
    assert [r.model_dump(exclude={"records", "rejects"}) for r in first] == [r.model_dump(exclude={"records", "rejects"}) for r in again]
    assert [[x.chosen for x in r.records] for r in first] == [[x.chosen for x in r.records] for r in again]
    tokens = sum(len(pieces(r.records[0].fields["solution"])) for r in first)
    assert paid < tokens * 128 / 5
    per_prefix = collections.Counter((b["messages"][0]["content"], b["messages"][-1]["content"])
                                     for b in server.generations() if b["messages"][-1]["role"] == "assistant"
                                     and MARK in b["messages"][0]["content"])
    assert min(per_prefix.values()) <= 32 and max(per_prefix.values()) == 128


def test_a_search_over_its_budget_rejects_with_the_reason(tmp_path):
    with PolicyServer() as server:
        [result] = run_engine(workflow_file(tmp_path, server.url, budget=100), seeds_of(problems(1)))
    [reject] = result.rejects
    assert reject.stage == "pivots" and "sample budget spent: 100 samples" in reject.reason


def test_a_teacher_that_cannot_continue_rejects_with_what_was_tried(tmp_path):
    planted = problems(2)
    with PolicyServer(prefill=False, completions=False) as server:
        results = run_engine(workflow_file(tmp_path, server.url), seeds_of(planted))
    for result in results:
        [reject] = result.rejects
        assert reject.stage == "pivots"
        assert "cannot continue a prefix" in reject.reason and server.url in reject.reason
        assert "chat_prefill: HTTP 400: Unrecognized request argument" in reject.reason
        assert "completions: POST" in reject.reason and "apply-template" in reject.reason


def test_wrong_keys_and_references_name_the_place(tmp_path):
    from synthgen.config.errors import UserError

    with PolicyServer() as server:
        for options, expected in [
            ({"samples": 8, "min_samples": 16}, "min_samples (16) is more than samples (8)"),
            ({"spam": 3}, "spam"),
        ]:
            with pytest.raises(UserError, match=re.escape(expected)):
                load_workflow(workflow_file(tmp_path, server.url, **options))
        for old, new, expected in [
            ("oracle: answer", "oracle: nope", "oracle[0]: unknown validator 'nope'"),
            ("pivotal_tokens: solution", "pivotal_tokens: pivots", "'pivots' is produced by this or a later step"),
            ("prompt: \"{{ seed.text }}\"", "prompt: \"{{ seed.text }}\"\n    parse: code_block",
             "'solution' must be a generate step with parse: text"),
        ]:
            path = workflow_file(tmp_path, server.url)
            path.write_text(path.read_text().replace(old, new))
            with pytest.raises(UserError, match=re.escape(expected)):
                load_workflow(path)


def test_pieces_join_back_to_the_text():
    text = "Étape 1: 3 × 4 = 12 🎉, donc \\boxed{12}"
    assert "".join(splitter("embedded")(text)) == text
    assert _joined_pieces(["a", [0xF0, 0x9F], [0x8E, 0x89], "b"]) == ["a", "🎉", "b"]


def test_kill_9_mid_search_then_resume_pays_no_sample_twice(tmp_path):
    """The server answers a number of samples, then holds every later request; the run is killed
    while they hang. The resumed run must not ask again for any sample that was answered."""
    planted = problems(2, length=100, seed=7)
    (tmp_path / "seeds.jsonl").write_text("".join(
        json.dumps({"question": seed.text, "answer": "42"}) + "\n" for seed in seeds_of(planted)))
    with PolicyServer(latency_s=0.002) as server:
        server.hold_after = 400
        path = workflow_file(tmp_path, server.url, samples=64)
        command = [sys.executable, "-m", "synthgen", "run", str(path), "--out", str(tmp_path / "out")]
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while len(server.answered) < 400:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "the run did not get going"
                time.sleep(0.1)
            time.sleep(1.0)  # the answers reach the cache; later requests hang at the server
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            subprocess.run(["pkill", "-9", "-s", str(process.pid)], check=False)
        answered = set(server.answered)
        assert len(answered) == 400
        server.release()
        asked_before = len(server.generations())
        resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        asked_again = [json.dumps(b, sort_keys=True) for b in server.generations()[asked_before:]]
    assert asked_again, "the search had more to do after the kill"
    assert not answered & set(asked_again), "a sample answered before the kill was paid for again"
    con = connect(tmp_path / "out")
    settled = con.execute("SELECT seed_id FROM data UNION SELECT seed_id FROM rejects").fetchall()
    assert len(settled) == 2
    pairs = con.execute("SELECT count(*) FROM data WHERE delta IS NOT NULL AND array_length(chosen) = 1").fetchone()[0]
    assert pairs > 0
    (tmp_path / "mix.yaml").write_text(f"name: dpo\nformat: preference\nsources:\n  - {{name: pts, path: {tmp_path / 'out'}, weight: 1}}\n")
    mixed = subprocess.run([sys.executable, "-m", "synthgen", "mix", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "mix")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert mixed.returncode == 0 and f"{pairs} rows" in mixed.stdout, mixed.stderr


@pytest.mark.slow
def test_continuation_on_the_real_embedded_server(tmp_path):
    """llama.cpp as the embedded teacher serves it: prefill (answers repeat the prefix, which
    the probe notices), /v1/completions with /apply-template, /tokenize with pieces."""
    from synthgen.engine.embedded_teacher import EmbeddedTeacher

    query = [{"role": "user", "content": "List the first ten prime numbers, separated by commas."}]
    prefix = "The first ten primes are 2, 3, 5,"
    with EmbeddedTeacher(tmp_path / "teacher.log", parallel=2) as embedded:
        async def main(style: str):
            teacher = TeacherClient("default", Teacher(base_url=embedded.url, continuation=style, max_tokens=12), None, None)
            continuer = Continuer(teacher)
            try:
                completion = await continuer.continue_answer(query, prefix, temperature=0.0, max_tokens=12,
                                                             sample_index=0, variant=1)
                return continuer, completion, await continuer.pieces(prefix + " 7, 11")
            finally:
                await teacher.close()

        for style in ("auto", "completions"):
            continuer, completion, cut = asyncio.run(main(style))
            assert continuer.style == ("chat_prefill" if style == "auto" else "completions")
            assert continuer.tokenizer == "endpoint" and "".join(cut) == prefix + " 7, 11" and len(cut) > 8
            assert completion.text and not completion.text.startswith(prefix)
        assert continuer.echoes_prefix is False
