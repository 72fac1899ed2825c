"""The text quality gates (novelty, repetition, structure, length) and the judge's spread: each
catches what it names and lets ordinary answers through; a lazy teacher that echoes its input and
grades everything 8/10 gets nothing accepted from the built-in text workflows."""

from __future__ import annotations

import asyncio

import pytest
from test_workflows import builtin, run_engine

import synthgen
from synthgen.engine.registry import load_workflow
from synthgen.engine.registry import build_validators
from synthgen.engine.validators.base import Inputs, Services
from synthgen.interface.inspection import format_summary
from synthgen.interface.report import write_report
from synthgen.scripted_teacher import ScriptedTeacher
from synthgen.storage.query import judge_spread

SEED = {"text": "Water boils at 100 degrees Celsius at sea level. At higher altitude the air pressure is lower, "
                "so water boils at a lower temperature, and food takes longer to cook.", "kind": "text"}
PROMPT = "Write one exercise about this passage: " + SEED["text"]
WORKFLOW = """name: gates
seeds: {path: seeds.jsonl}
teacher: {model: m, base_url: "http://127.0.0.1:9/v1"}
steps:
  - id: exercise
    prompt: "Write one exercise about this passage: {{ seed.text }}"
  - id: answer
    prompt: "Solve: {{ exercise }}"
validators:
  novelty: {}
  repetition: {}
  structure: {}
  length: {min_tokens: 3, max_tokens: 60, tokenizer: whitespace}
messages:
  - {role: user, content: "{{ exercise }}"}
  - {role: assistant, content: "{{ answer }}"}
"""


@pytest.fixture(scope="module")
def gates(tmp_path_factory):
    path = tmp_path_factory.mktemp("gates") / "wf.yaml"
    path.write_text(WORKFLOW)
    return build_validators(load_workflow(path), Services())


def verdict(gates, name: str, exercise: str, answer: str):
    inputs = Inputs({"seed": SEED, "exercise": exercise, "answer": answer},
                    {"exercise": PROMPT, "answer": f"Solve: {exercise}"})
    return asyncio.run(gates[name].check(inputs, "r1"))


GOOD_EXERCISE = "Why does food take longer to cook on a mountain?"
GOOD_ANSWER = "Lower air pressure lowers the boiling point, so the water is cooler and cooking is slower."


def test_ordinary_answers_pass_every_gate(gates):
    for name in gates:
        assert verdict(gates, name, GOOD_EXERCISE, GOOD_ANSWER).passed, name


@pytest.mark.parametrize(("exercise", "answer", "source"), [
    (SEED["text"], GOOD_ANSWER, "the seed"),
    (GOOD_EXERCISE, f"Solve: {GOOD_EXERCISE}", "its own prompt"),
    (GOOD_EXERCISE, "Why does food take longer to cook on a mountain? It does.", "the field 'exercise'"),
    (PROMPT, GOOD_ANSWER, "its own prompt"),
])
def test_novelty_names_what_was_copied(gates, exercise, answer, source):
    check = verdict(gates, "novelty", exercise, answer)
    assert not check.passed and f"copies {source}" in check.detail and "%" in check.detail


def test_repetition_catches_a_looping_answer(gates):
    check = verdict(gates, "repetition", GOOD_EXERCISE, "The water boils sooner up there. " * 10)
    assert not check.passed and "answer" in check.detail
    lines = "\n".join(["Step one: heat the water."] * 4 + ["Done."])
    assert not verdict(gates, "repetition", GOOD_EXERCISE, lines).passed


@pytest.mark.parametrize(("answer", "problem"), [
    ("Here is code:\n```python\nprint(1)\n", "code fence is left open"),
    ("The boiling point drops because the pressure of the air above the water", "ends mid-sentence"),
])
def test_structure_catches_broken_answers(gates, answer, problem):
    check = verdict(gates, "structure", GOOD_EXERCISE, answer)
    assert not check.passed and problem in check.detail
    assert verdict(gates, "structure", GOOD_EXERCISE, "Here is code:\n```python\nprint(1)\n```\n- short item").passed


def test_length_bounds_in_tokens(gates):
    assert "under the minimum 3" in verdict(gates, "length", GOOD_EXERCISE, "Yes.").detail
    assert "over the maximum 60" in verdict(gates, "length", GOOD_EXERCISE, "word " * 61).detail


def test_length_counts_with_the_embedded_teachers_vocabulary():
    from synthgen.engine.tokens import counter

    count, described = counter("embedded")
    assert "GGUF" in described
    assert count(["Hello world"])[0] in (2, 3) and count(["antidisestablishmentarianism"])[0] > 1


def lazy_teacher(messages: list[dict]) -> str:
    """Copies its input back; grades everything 8 out of 10."""
    last = messages[-1]["content"]
    return "Score: 8\nReason: Good." if "Score: <number>" in last else last


@pytest.mark.parametrize("name", ["rewrite_augment", "textbook", "self_revision", "sft_best_of_n", "judge_dpo",
                                  "reasoning_traces"])
def test_a_lazy_teacher_gets_nothing_accepted(name):
    with ScriptedTeacher(lazy_teacher) as teacher:
        workflow, seeds = builtin(name, teacher.url, limit=6)
        results = run_engine(workflow, seeds, None)
    assert sum(len(r.records) for r in results) == 0
    reasons = [reject.reason for r in results for reject in r.rejects]
    assert len(reasons) == len(seeds)
    print(name, reasons)
    expected = "is not the expected" if name == "reasoning_traces" else "copies"
    assert all(expected in reason or "does not exceed" in reason for reason in reasons), reasons


def test_a_judge_that_gives_everything_the_same_score_is_called_uninformative():
    spread = judge_spread([("judge:value", 8.0, 9), ("judge:value", 7.0, 1), ("judge:other", 3.0, 4), ("judge:other", 9.0, 4)])
    by_judge = {row["judge"]: row for row in spread}
    assert by_judge["value"]["uninformative"] and by_judge["value"]["mode_share"] == 0.9
    assert not by_judge["other"]["uninformative"]
    summary = {"seeds": 1, "records": 0, "rejects": 1, "requests": 1, "cache_hits": 0, "tokens_in": 1, "tokens_out": 1,
               "steps": [], "teachers": [], "validators": [], "rejects_by_reason": [], "judges": spread}
    assert "judge value: UNINFORMATIVE: scored 8 on 90% of 10 samples" in format_summary(summary)


def test_a_run_reports_its_uninformative_judge(ray_local, tmp_path):
    with ScriptedTeacher(lambda m: "Score: 8\nReason: Good." if "Score: <number>" in m[-1]["content"]
                         else "A careful, original paragraph about the topic, with one small example: 2 + 2 = 4.") as teacher:
        report = synthgen.run(str(builtin_path("textbook")), out=str(tmp_path / "out"), teacher_url=teacher.url,
                              model="scripted", limit=6)
    [judge] = report.summary["judges"]
    assert judge["judge"] == "value" and judge["uninformative"] and judge["scored"] == 6
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    assert '"uninformative": true' in manifest
    assert "UNINFORMATIVE" in write_report(tmp_path / "out").read_text()


def builtin_path(name: str):
    from conftest import REPO

    return REPO / "workflows" / f"{name}.yaml"
