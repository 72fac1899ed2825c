"""The workflow engine on plain asyncio: the built-in workflows, fan-out, the revise loop, parse
failures and judges, against the scripted teacher over real HTTP and the real sandbox."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from conftest import REPO, synthgen_cli

from synthgen.engine.registry import load_workflow
from synthgen.engine.sandbox import open_sandbox
from synthgen.engine.teacher import TeacherClient
from synthgen.engine.registry import build_validators
from synthgen.engine.validators.base import Services
from synthgen.engine.workflow import WorkflowRunner
from synthgen.scripted_teacher import Reply, ScriptedTeacher
from synthgen.seeds.load import load_seeds

WORKFLOWS = REPO / "workflows"
BUGGY = "```python\ndef add(a, b):\n    return a - b\n```"
FIXED = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "```python\ndef test_small():\n    assert add(1, 2) == 3\n\ndef test_zero():\n    assert add(0, 0) == 0\n```"


def builtin_responder(messages: list[dict]) -> Reply | str:
    """Answers each built-in prompt in the format the workflow expects."""
    last = messages[-1]["content"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    if "Write the task for this code" in last:
        return "Write a Python function `add(a, b)` that returns the sum of a and b."
    if "Running it against the tests gave" in last:
        return FIXED
    if "Write 3 example calls" in last:
        return "add(1, 2)\nadd(0, 0)\n>>> add(-1, 1)"
    if "Reply with the complete function" in last:
        return BUGGY
    if "Score: <number>" in last:
        return "Score: 8\nReason: clear." if "REVISED" in last else '{"score": 4, "rationale": "thin"}'
    if "Write one new question" in last:
        return "Q: Why is the sky blue?\nA: Air scatters blue light more than red light."
    if "retell it as a short dialogue" in last:
        return "Student: Why?\nTeacher: Because.\nStudent: Oh.\nTeacher: Yes."
    if "improved final answer" in last:
        return "REVISED answer."
    if "what your answer above got wrong" in last:
        return "- too short"
    if "two exercises" in last:
        return "Exercise: 1+1?\nSolution: 2."
    if "textbook section" in last:
        return "Title\n\nParagraph one.\n\nParagraph two. Example: 2+2=4."
    if "exercise question" in system:
        return "What is the main idea of the passage?"
    return "A short answer."


def run_engine(workflow, seeds, sandbox_backend: str | None = "bwrap"):
    """Every seed through the engine, no Ray: what a worker does, in one event loop."""

    async def main():
        teachers = {name: TeacherClient(name, config, None, None) for name, config in workflow.teachers.items()}
        pools = []

        def sandbox():
            pools.append(open_sandbox(sandbox_backend, slots=1))
            return pools[-1]

        validators = build_validators(workflow, Services(sandbox=sandbox))
        runner = WorkflowRunner(workflow, teachers, validators=validators)
        try:
            return await asyncio.gather(*(runner.run(seed) for seed in seeds))
        finally:
            await runner.close()
            for pool in pools:
                pool.close()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def add_seeds(tmp_path_factory):
    """Code seeds whose function the scripted teacher's answers are about."""
    folder = tmp_path_factory.mktemp("add_seeds")
    (folder / "add.py").write_text(
        'def add(a, b):\n    """Sum of a and b."""\n    return a + b\n\n\n'
        'def add_three(a, b, c):\n    """Sum of three numbers."""\n    return add(add(a, b), c)\n'
    )
    return folder


def builtin(name: str, url: str, limit: int = 2, **overrides):
    workflow = load_workflow(WORKFLOWS / f"{name}.yaml", teacher_url=url, model="scripted", limit=limit, **overrides)
    return workflow, load_seeds(workflow.seeds).seeds


@pytest.fixture
def scripted():
    with ScriptedTeacher(builtin_responder) as server:
        yield server


def test_instruction_reversal_revises_until_the_tests_pass(scripted, add_seeds):
    workflow, seeds = builtin("instruction_reversal", scripted.url, seeds=str(add_seeds))
    results = run_engine(workflow, seeds)
    records = [r for result in results for r in result.records]
    assert len(records) == len(seeds) == 2 and not any(result.rejects for result in results)
    record = records[0]
    assert record.fields["solution"] == "def add(a, b):\n    return a + b"
    assert [(t.step, t.purpose, t.round) for t in record.turns] == [
        ("instruction", "answer", 0), ("solution", "answer", 0), ("calls", "answer", 0), ("repair", "revise", 1),
    ]
    rounds = json.loads(record.fields["repair"])
    assert [r["passed"] for r in rounds] == [False, True] and "add(1, 2)" in rounds[0]["detail"]
    assert [(v.validator, v.passed, v.detail) for v in record.verdicts] == [("exec", True, "14 tests passed")]  # 3 calls + their variations
    assert [m.role for m in record.messages] == ["user", "assistant"]
    assert record.messages[1].content == "```python\ndef add(a, b):\n    return a + b\n```"
    revise_prompt = next(b for b in scripted.bodies if "Running it against" in b["messages"][-1]["content"])
    evidence = revise_prompt["messages"][-1]["content"]
    assert "FAILED add(1, 2)" in evidence and "returned -1, expected 3" in evidence and "return a - b" in evidence


def test_revise_loop_stops_at_max_rounds_with_the_evidence(scripted, add_seeds):
    scripted.responder = lambda m: BUGGY if "Reply with the complete" in m[-1]["content"] else builtin_responder(m)
    workflow, seeds = builtin("instruction_reversal", scripted.url, limit=1, seeds=str(add_seeds))
    [result] = run_engine(workflow, seeds)
    [reject] = result.rejects
    assert reject.stage == "revise:repair" and "still failing after 2 revision round(s)" in reject.reason
    assert "FAILED add(1, 2)" in reject.raw
    assert [t.round for t in reject.turns if t.step == "repair"] == [1, 2]
    assert [r["passed"] for r in json.loads(reject.fields["repair"])] == [False, False, False]


def test_exec_validator_with_a_tests_field(scripted, add_seeds, tmp_path):
    scripted.responder = lambda m: TESTS if "tests for" in m[-1]["content"] else BUGGY
    path = tmp_path / "tests.yaml"
    path.write_text(
        f"""name: with_tests
seeds: {{path: {add_seeds}, kind: code}}
teacher: {{base_url: {scripted.url}, model: scripted}}
steps:
  - id: solution
    prompt: "Rewrite {{{{ seed.meta.name }}}}"
    parse: code_block
  - id: tests
    prompt: "Write tests for {{{{ seed.meta.name }}}}"
    parse: code_block
validators:
  exec: {{code: solution, tests: tests}}
messages: [{{role: user, content: x}}, {{role: assistant, content: "{{{{ solution }}}}"}}]
"""
    )
    workflow = load_workflow(path, limit=1)
    [result] = run_engine(workflow, load_seeds(workflow.seeds).seeds)
    [reject] = result.rejects
    assert reject.stage == "validate:exec" and "1 of 2 tests failed: test_small" in reject.reason
    assert "FAILED test_small" in reject.raw and "AssertionError" in reject.raw


def test_rewrite_augment_builds_a_multi_turn_record(scripted):
    workflow, seeds = builtin("rewrite_augment", scripted.url)
    [record] = run_engine(workflow, seeds[:1])[0].records
    assert [m.role for m in record.messages] == ["user", "assistant"] * 3
    assert record.messages[4].content == "Why is the sky blue?"
    assert json.loads(record.fields["qa"]) == {"question": "Why is the sky blue?", "answer": "Air scatters blue light more than red light."}
    assert [t.step for t in record.turns] == ["exercise", "solution", "discussion", "qa_text"]
    discussion_request = next(b for b in scripted.bodies if "dialogue" in b["messages"][-1]["content"])
    roles = [m["role"] for m in discussion_request["messages"]]
    assert roles == ["system", "user", "assistant", "user"], "the discussion continues the solution's conversation"


def test_self_revision_requires_the_judge_score_to_improve(scripted):
    workflow, seeds = builtin("self_revision", scripted.url)
    [result] = run_engine(workflow, seeds[:1])
    [record] = result.records
    assert json.loads(record.fields["draft_score"])["score"] == 4
    assert json.loads(record.fields["revised_score"])["score"] == 8
    assert {v.validator: v.passed for v in record.verdicts} == {"judge:draft_score": True, "judge:revised_score": True,
                                                                "novelty": True, "repetition": True, "structure": True}
    critique_request = next(b for b in scripted.bodies if "got wrong" in b["messages"][-1]["content"])
    assert [m["role"] for m in critique_request["messages"]][:3] == ["system", "user", "assistant"]
    assert "Score: <number>" not in json.dumps(critique_request), "the grader's turn is not in the main conversation"

    scripted.responder = lambda m: '{"score": 4}' if "Score: <number>" in m[-1]["content"] else builtin_responder(m)
    [worse] = run_engine(workflow, seeds[1:2])
    assert worse.rejects[0].stage == "judge:revised_score"
    assert "does not exceed draft_score's 4" in worse.rejects[0].reason


def test_textbook_section_and_exercises(scripted):
    workflow, seeds = builtin("textbook", scripted.url)
    records = [r for result in run_engine(workflow, seeds, None) for r in result.records]
    assert len(records) == 2
    assert [m.role for m in records[0].messages] == ["user", "assistant", "user", "assistant"]
    assert records[0].fields["exercises"].startswith("Exercise:")


def qa_workflow(folder: Path, url: str, steps: str, answer: str) -> Path:
    """A workflow over the shipped Q&A seeds with the given steps; the answer field ends the chat."""
    path = folder / "qa_workflow.yaml"
    path.write_text(
        f"name: qa_test\nseeds: {{path: {REPO / 'seeds' / 'qa.jsonl'}, kind: qa}}\n"
        f"teacher: {{base_url: {url}, model: scripted}}\nsteps:\n{steps}"
        f"messages: [{{role: user, content: '{{{{ seed.meta.question }}}}'}}, {{role: assistant, content: '{{{{ {answer} }}}}'}}]\n"
    )
    return path


def test_fan_out_gives_n_records_with_distinct_sample_indexes(scripted, tmp_path):
    steps = "  - id: answer\n    prompt: '{{ seed.meta.question }}'\n    n: 3\n"
    workflow = load_workflow(qa_workflow(tmp_path, scripted.url, steps, "answer"), limit=2)
    results = run_engine(workflow, load_seeds(workflow.seeds).seeds, None)
    for result in results:
        assert sorted(r.sample_index for r in result.records) == [0, 1, 2]
        assert len({r.record_id for r in result.records}) == 3
    assert sorted(body["seed"] for body in scripted.bodies) == [0, 0, 1, 1, 2, 2], "each sample asks with its own seed"


def test_parse_steps_split_think_and_reject_with_the_raw_text(scripted, tmp_path):
    scripted.responder = lambda m: "<think>2 and 2 make 4</think> 4" if "15%" in m[-1]["content"] else "no tags here"
    steps = "  - id: said\n    prompt: '{{ seed.meta.question }}'\n  - id: parts\n    from: said\n    parse: think\n"
    workflow = load_workflow(qa_workflow(tmp_path, scripted.url, steps, "parts.answer"))
    seeds = [s for s in load_seeds(workflow.seeds).seeds if s.meta["question"].startswith(("What is 15", "Why do we see"))]
    by_question = {seed.seed_id: seed.meta["question"] for seed in seeds}
    results = {by_question[r.seed_id][:10]: r for r in run_engine(workflow, seeds, None)}
    [record] = results["What is 15"].records
    assert json.loads(record.fields["parts"]) == {"reasoning": "2 and 2 make 4", "answer": "4"}
    assert record.messages[1].content == "4"
    [reject] = results["Why do we "].rejects
    assert reject.stage == "parts" and "no <think>" in reject.reason and reject.raw == "no tags here"


CHECK_CASES = {
    "unknown field": ("  - id: b\n    prompt: '{{ nope }}'\n", "steps[1].prompt: template uses unknown field(s) nope"),
    "cycle": ("  - id: b\n    from: c\n    parse: code_block\n  - id: c\n    prompt: x\n",
              "steps[1].from: 'c' is produced by this or a later step (a cycle)"),
    "unknown step": ("  - id: b\n    revise: ghost\n    until: exec\n    max_rounds: 1\n", "steps[1].revise: 'ghost' is not a step id"),
    "no terminating condition": ("  - id: b\n    revise: a\n    until: exec\n", "missing required key 'steps[1].max_rounds'"),
    "unknown validator": ("  - id: b\n    revise: a\n    until: lint\n    max_rounds: 1\n", "steps[1].until: unknown validator 'lint'; valid: exec"),
    "validator field": ("  - id: b\n    validate: exec\n", "steps[1].validate: validator field code: 'code' is not produced before this point"),
}


@pytest.mark.parametrize("case", sorted(CHECK_CASES))
def test_check_names_bad_references(tmp_path, case):
    steps, expected = CHECK_CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"name: bad\nseeds: {{path: {REPO / 'seeds' / 'qa.jsonl'}}}\nsteps:\n  - id: a\n    prompt: hi\n{steps}"
        "validators:\n  exec: {code: code}\nmessages: [{role: user, content: hi}]\n"
    )
    done = synthgen_cli("check", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert re.match(rf"error: {re.escape(str(path))}:\d+: ", line), line
    assert expected in line, line


def test_run_end_to_end_on_ray_with_the_sandbox(ray_local, scripted, tmp_path, add_seeds):
    out = tmp_path / "out"
    done = synthgen_cli("run", str(WORKFLOWS / "instruction_reversal.yaml"), "--out", str(out), "--seeds", str(add_seeds),
                        "--teacher-url", scripted.url, "--model", "scripted")
    assert done.returncode == 0, done.stderr
    from synthgen.storage.query import connect

    rows = connect(out).execute("SELECT solution, verdicts, repair FROM data").fetchall()
    assert len(rows) == 2
    assert all("a + b" in solution and verdicts[0]["passed"] for solution, verdicts, _ in rows)
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    assert manifest["seeds"]["settled"] == 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"score": 7, "rationale": "good"}', (7.0, "good")),
        ("Score: 6\nReason: clear but short.", (6.0, "clear but short.")),
        ("I would give it 9 out of 10.", (9.0, "I would give it 9 out of 10.")),
        ("score = 42, no wait, 3", (3.0, "score = 42, no wait, 3")),
    ],
)
def test_judge_scores_are_read_leniently_within_the_scale(answer, expected):
    from synthgen.engine.parsing import judge_score

    assert judge_score(answer, 1, 10) == expected


def test_judge_answer_without_a_score_in_scale_is_unusable():
    from synthgen.engine.parsing import ParseError, judge_score

    with pytest.raises(ParseError, match="no score between 1 and 10"):
        judge_score("It is quite good, 42 of 100 points", 1, 10)


def test_broken_tests_are_not_revised_against(scripted, add_seeds):
    """Calls the reference itself cannot run say nothing about the solution: no revision round is spent."""
    scripted.responder = lambda m: "missing_function(1)" if "example calls" in m[-1]["content"] else builtin_responder(m)
    workflow, seeds = builtin("instruction_reversal", scripted.url, limit=1, seeds=str(add_seeds))
    [result] = run_engine(workflow, seeds)
    [reject] = result.rejects
    assert reject.stage == "revise:repair" and "no usable calls" in reject.reason and "cannot fix" in reject.reason
    assert not any("Running it against" in b["messages"][-1]["content"] for b in scripted.bodies)


def test_varied_calls_catch_what_the_teachers_calls_miss():
    from synthgen.engine.validators.exec import varied

    calls = varied(["clamp(5, 0, 10)"])
    assert calls[0] == "clamp(5, 0, 10)" and {"clamp(4, 0, 10)", "clamp(5, 0, 11)", "clamp(5, -1, 10)"} <= set(calls)
    reference = "def clamp(x, low, high):\n    return max(low, min(x, high))\n"
    buggy = "def clamp(x, low, high):\n    return x if low < x < high else (low if x <= low else high - 1)\n"
    with open_sandbox("bwrap") as pool:
        from synthgen.engine.sandbox import Job

        # The teacher's call sits just inside the range: it passes; its variation x=10 hits the bug.
        assert pool.run(Job.with_calls(buggy, ["clamp(9, 0, 10)"], reference)).status == "passed"
        caught = pool.run(Job.with_calls(buggy, varied(["clamp(9, 0, 10)"]), reference))
        assert caught.status == "failed" and "clamp(10, 0, 10)" in caught.failed_tests


def test_calls_that_all_expect_one_answer_prove_nothing():
    """Seen in a demo: every call searched an empty list, all expected -1, and a wrong
    binary_search passed six tests. Such calls are the tests' fault, not the solution's."""
    reference = "def search(items, target):\n    return items.index(target) if target in items else -1\n"
    wrong = "def search(items, target):\n    return -1\n"
    with open_sandbox("bwrap") as pool:
        from synthgen.engine.sandbox import Job

        vacuous = pool.run(Job.with_calls(wrong, ["search([], 3)", "search([], 0)", "search([], -1)"], reference))
        assert vacuous.status == "error" and vacuous.broken == "tests" and "do not tell implementations apart" in vacuous.reason
        telling = pool.run(Job.with_calls(wrong, ["search([], 3)", "search([3, 4], 4)"], reference))
        assert telling.status == "failed" and telling.failed_tests == ["search([3, 4], 4)"]


def test_a_revisers_evidence_is_bounded_keeping_its_start_and_end():
    from synthgen.engine.steps.revise import MAX_EVIDENCE_CHARS, shortened

    evidence = "FAILED test_one\nTraceback ...\n" + "frame line\n" * 2000 + "AssertionError: assert 2 == 3"
    short = shortened(evidence)
    assert len(short) < MAX_EVIDENCE_CHARS + 80 and short.startswith("FAILED test_one") and short.endswith("assert 2 == 3")
    assert "characters left out" in short and shortened("short") == "short"
