"""Post-training data: the answer verifier, candidates, best/worst selection (judge, two-order
pairwise, verifier), preference columns, reasoning-trace checks; the engine against the scripted
teacher over real HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest
from conftest import REPO

from synthgen.config.errors import UserError
from synthgen.engine.answers import final_answer, same_answer
from synthgen.engine.cache import ResponseCache
from synthgen.engine.records import Seed
from synthgen.engine.registry import load_workflow
from synthgen.engine.validators.base import Inputs, Services
from synthgen.engine.validators.think import ThinkCheck, ThinkSpec
from synthgen.engine.workflow import run_seeds
from synthgen.scripted_teacher import ScriptedTeacher

# (final answer as a teacher wrote it, the expected answer, mode, same?)
VERIFIER_CASES = [
    # numbers: integers, decimals, fractions, mixed numbers, percentages, thousands, scientific
    ("149", "149", "auto", True), ("149.0", "149", "auto", True), ("-3", "3", "auto", False),
    ("3/4", "0.75", "auto", True), ("0.75", "\\frac{3}{4}", "auto", True), ("\\dfrac{6}{8}", "3/4", "auto", True),
    ("0.749", "3/4", "auto", False), ("1 1/2", "1.5", "auto", True), ("1 1/2", "3/2", "number", True),
    ("75%", "0.75", "auto", True), ("75%", "75", "auto", True), ("7.5%", "0.75", "auto", False),
    ("24\\%", "24%", "auto", True), ("1,234", "1234", "auto", True), ("12,600", "12600", "auto", True),
    ("1.000", "1000", "auto", False), ("4.2 \\times 10^{-5}", "0.000042", "auto", True),
    ("6.02e23", "6.02 \\times 10^{23}", "auto", True), ("1.5e3", "1500", "auto", True), ("1.5e3", "150", "auto", False),
    ("$34", "34", "auto", True), ("75 cm", "75", "auto", True), ("x = 5", "5", "auto", True), ("y=10", "10", "auto", True),
    ("5", "x = 5", "auto", True), ("6", "x = 5", "auto", False),
    # LaTeX and radicals, pi
    ("5\\sqrt{2}", "\\sqrt{50}", "auto", True), ("\\frac{\\sqrt{2}}{2}", "1/\\sqrt{2}", "auto", True),
    ("2\\sqrt{3}", "\\sqrt{12}", "auto", True), ("3\\sqrt{2}", "\\sqrt{12}", "auto", False),
    ("9\\pi", "9 pi", "auto", True), ("\\frac{\\pi}{2}", "pi/2", "auto", True), ("1.5708", "\\frac{\\pi}{2}", "auto", False),
    ("\\left(\\frac{2}{3}\\right)^2", "4/9", "auto", True), ("\\sqrt[3]{27}", "3", "auto", True),
    # algebra through sympy
    ("x^2 + 6x + 9", "(x+3)^2", "auto", True), ("(x - 3)(x + 3)", "x^2 - 9", "auto", True),
    ("x^2 + 9", "(x+3)^2", "auto", False), ("3x^2 + 2", "2 + 3x^{2}", "auto", True), ("2x", "x2", "auto", True),
    ("2x", "x^2", "auto", False), ("\\frac{x}{2}", "0.5x", "auto", True), ("x + y", "y + x", "auto", True),
    ("x + y", "x + z", "auto", False), ("\\sin(x)^2 + \\cos(x)^2", "1", "expression", True),
    ("e^{2x}", "(e^x)^2", "auto", True), ("\\ln(x^2)", "2\\ln(x)", "auto", True),
    # answer sets
    ("2, 3", "3, 2", "auto", True), ("x = 2 or x = 3", "2, 3", "auto", True), ("2, 4", "2, 3", "auto", False),
    ("2", "2, 3", "auto", False), ("1,000, 2", "2, 1000", "auto", True),
    # multiple choice
    ("C", "C", "auto", True), ("(B)", "B", "auto", True), ("B) Mercury", "B", "auto", True), ("D", "B", "auto", False),
    ("b", "B", "choice", True), ("A", "4", "auto", False),
    # strings
    ("Na", "Na", "auto", True), ("The Octagon", "octagon", "auto", True), ("hexagon", "octagon", "auto", False),
    ("Paris.", "paris", "string", True), ("Lyon", "paris", "string", False),
    # never evaluated as code
    ("__import__('os').system('true')", "0", "auto", False), ("().__class__", "0", "auto", False),
    ("10^{100000}", "1", "auto", False),
]


@pytest.mark.parametrize("answer,expected,mode,same", VERIFIER_CASES, ids=[f"{c[0]}~{c[1]}" for c in VERIFIER_CASES])
def test_verifier_case(answer, expected, mode, same):
    assert same_answer(answer, expected, mode) is same


@pytest.mark.parametrize("text,answer", [
    ("Work: 7 * 24 = 168, 168 - 19 = 149.\n\\boxed{149}", "149"),
    ("<think>12 looks wrong, redo: 9</think>\nAnswer: 9", "9"),
    ("Some working.\n#### 42", "42"),
    ("The answer is .5.", ".5"),
    ("So the final answer is $\\frac{5}{8}$.", "\\frac{5}{8}"),
    ("\\boxed{\\frac{1}{6}} which is also \\boxed{ \\frac{1}{6} }", "\\frac{1}{6}"),
    ("\\boxed{9} or perhaps \\boxed{12}", None),
    ("A long answer that goes on and on about the problem without ever committing to anything at all.", None),
    ("<think>only thinking</think>", None),
])
def test_final_answer_is_the_one_the_text_commits_to(text, answer):
    assert final_answer(text).answer == answer


def test_verifier_agreement_is_reported():
    """The figure the closing note quotes: agreement with the hand labels over every case."""
    agreed = sum(same_answer(a, e, m) is s for a, e, m, s in VERIFIER_CASES)
    assert len(VERIFIER_CASES) >= 50 and agreed == len(VERIFIER_CASES)


@pytest.mark.parametrize("trace,passed", [
    ("<think>" + "First add the tens, then the units, and check the sum. " * 3 + "</think>\n\\boxed{5}", True),
    ("The answer is 5.", False),
    ("<think>short</think>\n\\boxed{5}", False),
    ("<think>" + "step " * 30 + "</think>\n", False),
    ("<think>" + "step " * 30 + "<think>again</think>\n\\boxed{5}", False),
    ("<think>" + "step " * 400 + "</think>\n\\boxed{5}", False),
])
def test_think_form(trace, passed):
    check = ThinkCheck("form", ThinkSpec(field="trace", min_tokens=10, max_tokens=200, tokenizer="whitespace"), Services())
    assert asyncio.run(check.check(Inputs({"trace": trace}))).passed is passed


def test_a_regex_pattern_with_template_syntax_is_refused(tmp_path):
    seeds = tmp_path / "s.jsonl"
    seeds.write_text('{"question": "q", "answer": "4"}\n')
    path = tmp_path / "w.yaml"
    path.write_text(f"""name: t
seeds: {{path: {seeds}, kind: qa}}
steps:
  - {{id: a, prompt: "{{{{ seed.meta.question }}}}"}}
  - {{id: b, from: a, parse: regex, pattern: "(?P<x>{{{{ seed.meta.answer }}}})"}}
messages: [{{role: user, content: "{{{{ a }}}}"}}]
""")
    with pytest.raises(UserError, match=r"w.yaml:5.*not a template.*verify validator"):
        load_workflow(path)


# -- the engine against a scripted teacher -----------------------------------------------------
QUALITY = {"GOOD": 9, "FAIR": 6, "POOR": 3, "BAD": 1}
SEEDS = [Seed.create("qa", f"question {i}", "test", {"question": f"What is question {i}?", "answer": "GOOD"}) for i in range(3)]


def candidate_by_seed(body: dict) -> str:
    """Candidate k (sampling seed offset k * stride) answers with the k-th quality."""
    from synthgen.engine.teacher import VARIANT_SEED_STRIDE

    variant = (body.get("seed") or 0) // VARIANT_SEED_STRIDE
    return f"{list(QUALITY)[variant % len(QUALITY)]} answer number {variant}."


def fair_judge(messages: list[dict], body: dict) -> str:
    last = messages[-1]["content"]
    if "Score: <number>" in last:
        quality = next(q for q in QUALITY if f"Answer:\n{q}" in last)
        return f"Score: {QUALITY[quality]}\nReason: it is {quality.lower()}."
    if "Better:" in last:
        a = next(q for q in QUALITY if f"Answer A:\n{q}" in last)
        b = next(q for q in QUALITY if f"Answer B:\n{q}" in last)
        return "Better: " + ("A" if QUALITY[a] > QUALITY[b] else "B" if QUALITY[b] > QUALITY[a] else "tie")
    return candidate_by_seed(body)


def first_answer_judge(messages: list[dict], body: dict) -> str:
    """A judge with a position bias: always prefers the first answer it is shown."""
    if "Better:" in messages[-1]["content"]:
        return "Better: A\nReason: the first one."
    return candidate_by_seed(body)


def workflow_file(tmp_path: Path, url: str, select: str, messages_from: str = "pick", extra: str = "") -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(f"""name: pairs
seeds: {{path: {tmp_path / 'seeds.jsonl'}, kind: qa}}
teacher: {{base_url: {url}, model: scripted, max_retries: 1, timeout_s: 10}}
steps:
  - id: answers
    candidates: 4
    system: Answer briefly.
    prompt: "{{{{ seed.meta.question }}}}"
  - id: pick
    select: answers
{select}
{extra}messages:
  - {{role: user, content: "{{{{ seed.meta.question }}}}"}}
  - {{role: assistant, content: "{{{{ {messages_from}.best }}}}"}}
""")
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps({"question": s.meta["question"], "answer": "GOOD"}) + "\n" for s in SEEDS))
    return path


def run_engine(workflow, seeds, cache_dir: Path | None = None):
    return asyncio.run(run_seeds(workflow, seeds, ResponseCache(cache_dir) if cache_dir else None))


def test_judge_selection_picks_the_best_and_the_worst(tmp_path):
    with ScriptedTeacher(fair_judge) as teacher:
        workflow = load_workflow(workflow_file(tmp_path, teacher.url, "    by: judge\n    rubric: correct?\n    min_margin: 2"))
        results = run_engine(workflow, SEEDS)
        requests = teacher.total_requests
    records = [record for result in results for record in result.records]
    assert len(records) == 3 and not any(result.rejects for result in results)
    for record in records:
        pick = json.loads(record.fields["pick"])
        assert pick["best"].startswith("GOOD") and pick["worst"].startswith("BAD") and pick["margin"] == 8
        assert record.chosen[0].content.startswith("GOOD") and record.rejected[0].content.startswith("BAD")
        assert (record.score_chosen, record.score_rejected, record.margin) == (9, 1, 8)
        assert record.prompt == record.messages[:-1]  # the SFT and DPO views ask the same
        assert [m.role for m in record.prompt] == ["user"] and record.prompt[0].content.startswith("What is")
        assert record.messages[-1].content.startswith("GOOD")
    assert requests == 3 * (4 + 4)  # per seed: 4 candidates, 4 grades


def test_pairwise_judging_in_both_orders(tmp_path):
    select = "    by: pairwise\n    rubric: correct?\n    min_margin: 0.25"
    with ScriptedTeacher(fair_judge) as teacher:
        results = run_engine(load_workflow(workflow_file(tmp_path, teacher.url, select)), SEEDS[:1])
        assert teacher.total_requests == 4 + 4 * 3  # every ordered pair
    pick = json.loads(results[0].records[0].fields["pick"])
    assert pick["scores"] == [1.0, pytest.approx(2 / 3), pytest.approx(1 / 3), 0.0]
    assert pick["best"].startswith("GOOD") and pick["worst"].startswith("BAD")
    (tmp_path / "biased").mkdir()
    with ScriptedTeacher(first_answer_judge) as teacher:
        biased = run_engine(load_workflow(workflow_file(tmp_path / "biased", teacher.url, select)), SEEDS[:1])
    [reject] = biased[0].rejects
    assert reject.stage == "select:pick" and "margin 0 below 0.25" in reject.reason, reject.reason
    assert json.loads(reject.fields["pick"])["scores"] == [0.5, 0.5, 0.5, 0.5]


def test_candidates_never_reuse_each_other_from_the_cache(tmp_path, caplog):
    """A teacher that ignores the sampling seed: four distinct requests (seeds and cache keys),
    a warning that the answers coincide, and no pair from one text twice."""
    with ScriptedTeacher(lambda messages, body: "Score: 5\nReason: fine." if "Score:" in messages[-1]["content"]
                         else "The same answer.") as teacher:
        workflow = load_workflow(workflow_file(tmp_path, teacher.url, "    by: judge\n    rubric: correct?\n    min_margin: 1"))
        with caplog.at_level(logging.WARNING):
            results = run_engine(workflow, SEEDS[:1], cache_dir=tmp_path / "cache")
        seeds = {body["seed"] for body in teacher.bodies if "Score:" not in body["messages"][-1]["content"]}
        candidate_turns = [t for t in results[0].rejects[0].turns if t.purpose == "candidate"]
        assert len(seeds) == 4 and len(candidate_turns) == 4 and not any(t.cache_hit for t in candidate_turns)
        again = run_engine(workflow, SEEDS[:1], cache_dir=tmp_path / "cache")
        assert all(t.cache_hit for t in again[0].rejects[0].turns)  # paid once, never twice
    assert "only 1 distinct of 4 candidates" in caplog.text
    assert "no pair" in results[0].rejects[0].reason


def test_verifier_selection_gives_the_pass_rate_and_keeps_the_band(tmp_path):
    def traces(messages, body):
        from synthgen.engine.teacher import VARIANT_SEED_STRIDE

        right = (body.get("seed") or 0) // VARIANT_SEED_STRIDE == 2
        return "<think>" + "Multiply, then subtract the unsold rolls. " * 4 + "</think>\n\\boxed{" + ("149" if right else "150") + "}"

    (tmp_path / "math.jsonl").write_text(json.dumps({"question": "7 trays of 24, 19 unsold?", "answer": "149"}) + "\n")
    verifier = """    by: verifier
    verifier: [answer, form]
{band}
validators:
  answer: {{kind: verify, answer: answers, expected: "{{{{ seed.meta.answer }}}}"}}
  form: {{kind: think, field: answers, min_tokens: 10, tokenizer: whitespace}}
"""
    with ScriptedTeacher(traces) as teacher:
        accepted = run_engine(load_workflow(workflow_file(tmp_path, teacher.url, verifier.format(band="    pass_band: [0.1, 0.9]"))),
                              [Seed.create("qa", "m", "t", {"question": "7 trays of 24, 19 unsold?", "answer": "149"})])
        (tmp_path / "strict").mkdir()
        strict = run_engine(load_workflow(workflow_file(tmp_path / "strict", teacher.url, verifier.format(band="    pass_band: [0.5, 1.0]"))),
                            [Seed.create("qa", "m", "t", {"question": "7 trays of 24, 19 unsold?", "answer": "149"})])
    [record] = accepted[0].records
    assert record.pass_rate == 0.25 and "\\boxed{149}" in record.chosen[0].content and "\\boxed{150}" in record.rejected[0].content
    assert record.margin == 1.0
    [reject] = strict[0].rejects
    assert "pass rate 0.25 outside [0.5, 1]: too hard" in reject.reason
    (tmp_path / "hard").mkdir()
    with ScriptedTeacher(lambda messages, body: "I think it is \\boxed{150}") as teacher:
        hard = run_engine(load_workflow(workflow_file(tmp_path / "hard", teacher.url, verifier.format(band=""))),
                          [Seed.create("qa", "m", "t", {"question": "7 trays of 24, 19 unsold?", "answer": "149"})])
    [reject] = hard[0].rejects
    assert reject.reason == "none of the 4 candidates passed answer, form: answer: answer '150' is not the expected '149' (4x)"


@pytest.mark.slow
def test_judge_dpo_end_to_end_on_ray_gives_trl_preference_rows(tmp_path, ray_local):
    """The built-in judge_dpo workflow on Ray: only valid pairs, in TRL's preference format, read
    with `datasets`; then a preference mixture keeps each pair one row."""
    import datasets
    import pyarrow.parquet as pq

    from synthgen.config.recipe import Recipe
    from synthgen.interface.api import run_workflow
    from synthgen.pipelines.mix import build_mixture

    def answers(messages, body):
        last = messages[-1]["content"]
        if "Better:" in last:
            a, b = (re.search(rf"Answer {side}:\n(\w+)", last).group(1) for side in "AB")
            return "Better: " + ("A" if QUALITY.get(a, 0) > QUALITY.get(b, 0) else "B" if QUALITY.get(b, 0) > QUALITY.get(a, 0) else "tie")
        if "Score:" in last:
            return "Score: 5\nReason: ok."
        return candidate_by_seed(body)

    with ScriptedTeacher(answers) as teacher:
        workflow = load_workflow(REPO / "workflows" / "judge_dpo.yaml", out=str(tmp_path / "run"),
                                 teacher_url=teacher.url, model="scripted", limit=8)
        report = run_workflow(workflow, address=None)
        requests = teacher.total_requests
    files = sorted((tmp_path / "run" / "data").glob("*.parquet"))
    rows = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    assert len(rows) == 8 and report.status == "done"
    for row in rows:
        assert [m["role"] for m in row["prompt"]] == ["user"] and row["prompt"] == row["messages"][:-1]
        assert [m["role"] for m in row["chosen"]] == ["assistant"] == [m["role"] for m in row["rejected"]]
        assert row["chosen"] != row["rejected"] and row["margin"] >= 0.25
        assert row["score_chosen"] - row["score_rejected"] == pytest.approx(row["margin"])
    assert requests == 8 * (4 + 12)
    recipe = Recipe(name="dpo", format="preference", sources=[{"name": "dpo", "path": str(tmp_path / "run"), "weight": 1}],
                    weight_by="rows", tokenizer="whitespace")
    manifest = build_mixture(recipe, tmp_path / "mix")
    mixed = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in (tmp_path / "mix" / "data").glob("*.parquet")), split="train")
    assert manifest["rows"] == len(mixed) == 8
    assert set(mixed.column_names) >= {"prompt", "chosen", "rejected", "score_chosen", "score_rejected", "margin"}
    assert pq.read_schema(files[0]).field("chosen").type == pq.read_schema(files[0]).field("rejected").type


def test_preference_mixtures_take_pairs_and_only_pairs(tmp_path):
    import pyarrow.parquet as pq

    from synthgen.config.recipe import Recipe
    from synthgen.pipelines.mix import build_mixture

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"q": f"Question {i}?", "good": f"Right {i}.", "bad": f"Wrong {i}."}) + "\n"
                             for i in range(5)))
    source = {"name": "pairs", "path": str(pairs), "weight": 1, "columns": {"prompt": "q", "chosen": "good", "rejected": "bad"}}
    manifest = build_mixture(Recipe(name="dpo", format="preference", sources=[source], weight_by="rows",
                                    tokenizer="whitespace"), tmp_path / "mix")
    rows = pq.read_table(tmp_path / "mix" / manifest["shards"][0]["file"]).to_pylist()
    assert manifest["rows"] == 5 and {row["prompt"][0]["content"] for row in rows} == {f"Question {i}?" for i in range(5)}
    for row in rows:  # each pair stays together
        number = row["prompt"][0]["content"].split()[1].rstrip("?")
        assert row["chosen"] == [{"role": "assistant", "content": f"Right {number}."}]
        assert row["rejected"] == [{"role": "assistant", "content": f"Wrong {number}."}]
    chats = dict(source, columns={"prompt": "q", "completion": "good"})
    with pytest.raises(UserError, match="format: preference takes prompt \\+ chosen \\+ rejected"):
        build_mixture(Recipe(name="dpo", format="preference", sources=[chats], tokenizer="whitespace"), tmp_path / "bad")


def test_a_cut_off_candidate_is_dropped_and_a_judge_without_verdicts_is_unusable(tmp_path):
    from synthgen.scripted_teacher import Reply

    def cut_second(messages, body):
        last = messages[-1]["content"]
        if "Better:" in last or "Score:" in last:
            return Reply(fair_judge(messages, body) + " and on and on", "length")  # the verdict, then cut
        text = candidate_by_seed(body)
        return Reply(text, "length") if text.startswith("FAIR") else text

    with ScriptedTeacher(cut_second) as teacher:
        results = run_engine(load_workflow(workflow_file(tmp_path, teacher.url, "    by: judge\n    rubric: correct?")), SEEDS[:1])
    pick = json.loads(results[0].records[0].fields["pick"])
    assert len(pick["scores"]) == 3 and not any(text.startswith("FAIR") for text in json.loads(results[0].records[0].fields["answers"]))
    (tmp_path / "mute").mkdir()
    with ScriptedTeacher(lambda messages, body: "Both are lovely." if "Better:" in messages[-1]["content"]
                         else candidate_by_seed(body)) as teacher:
        mute = run_engine(load_workflow(workflow_file(tmp_path / "mute", teacher.url, "    by: pairwise\n    rubric: correct?")), SEEDS[:1])
    assert mute[0].rejects[0].reason == "judge unusable: 12 of 12 comparisons without a 'Better: A, B or tie' verdict"


def test_code_candidates_are_verified_by_the_exec_validator(tmp_path):
    """Rejection sampling for code: the sandbox's verdict is the score."""
    from synthgen.engine.sandbox import open_sandbox

    right = "```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "```python\ndef add(a, b):\n    return a * b\n```"

    def responder(messages, body):
        from synthgen.engine.teacher import VARIANT_SEED_STRIDE

        if "TESTS" in messages[-1]["content"]:
            return "```python\ndef test_add():\n    assert add(2, 3) == 5\n```"
        return right if (body.get("seed") or 0) // VARIANT_SEED_STRIDE in (1, 3) else wrong

    (tmp_path / "seeds.jsonl").write_text(json.dumps({"text": "def add(a, b): ...", "id": "add"}) + "\n")
    (tmp_path / "w.yaml").write_text(f"""name: code_pairs
seeds: {{path: {tmp_path / 'seeds.jsonl'}, kind: code}}
teacher: {{base_url: URL, model: scripted, max_retries: 1, timeout_s: 10}}
steps:
  - {{id: tests, prompt: "TESTS for {{{{ seed.text }}}}", parse: code_block}}
  - {{id: answers, candidates: 4, prompt: "Implement {{{{ seed.text }}}}", parse: code_block}}
  - {{id: pick, select: answers, by: verifier, verifier: run}}
validators:
  run: {{kind: exec, code: answers, tests: tests, timeout_s: 5}}
messages: [{{role: user, content: "{{{{ seed.text }}}}"}}, {{role: assistant, content: "{{{{ pick.best }}}}"}}]
""")
    with ScriptedTeacher(responder) as teacher, open_sandbox("bwrap", slots=1) as pool:
        (tmp_path / "w.yaml").write_text((tmp_path / "w.yaml").read_text().replace("URL", teacher.url))
        workflow = load_workflow(tmp_path / "w.yaml")
        seeds = [Seed.create("code", "def add(a, b): ...", "t")]
        [result] = asyncio.run(run_seeds(workflow, seeds, services=Services(sandbox=lambda: pool)))
    [record] = result.records
    assert record.pass_rate == 0.5 and "a + b" in record.chosen[0].content and "a * b" in record.rejected[0].content
    assert "a + b" in record.messages[-1].content
