"""Workflow YAML errors: one line naming file, line, key and the valid choices; exit 1; no traceback."""

from __future__ import annotations

import pytest

from conftest import REPO, synthgen_cli

from synthgen.engine.registry import load_workflow
from synthgen.config.errors import UserError

VALID = """name: t
seeds: {path: seeds.jsonl}
teacher: {model: m, base_url: "http://127.0.0.1:9/v1"}
steps:
  - id: first
    prompt: "Summarise {{ seed.text }}"
  - id: second
    prompt: "Improve {{ first }}"
messages:
  - {role: user, content: "{{ seed.text }}"}
  - {role: assistant, content: "{{ second }}"}
"""


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_workflow(path)
    return str(caught.value)


def test_valid_workflow_resolves_paths_against_the_yaml(tmp_path):
    path = tmp_path / "sub" / "wf.yaml"
    path.parent.mkdir()
    path.write_text(VALID)
    workflow = load_workflow(path)
    assert workflow.seeds.path == str(tmp_path / "sub" / "seeds.jsonl")
    assert [s.id for s in workflow.steps] == ["first", "second"]
    assert set(workflow.teachers) == {"default"}


def test_unknown_key_names_file_line_and_valid_keys(tmp_path):
    message = _error(tmp_path, VALID.replace('    prompt: "Improve', '    promt: x\n    prompt: "Improve'))
    assert message.startswith(f"{tmp_path / 'wf.yaml'}:8: unknown key 'promt' in steps[1]")
    valid = message.split("valid keys: ")[1].split(", ")
    assert {"id", "prompt", "system", "parse", "n"} <= set(valid)


def test_unknown_top_level_key(tmp_path):
    message = _error(tmp_path, VALID + "outptu: {dir: x}\n")
    assert ":12: unknown key 'outptu'" in message and "valid keys: name, description, seeds" in message


def test_wrong_type_names_line_and_value(tmp_path):
    message = _error(tmp_path, VALID.replace("model: m,", "model: m, max_in_flight: lots,"))
    assert ":3: teacher.max_in_flight:" in message and "'lots'" in message


def test_template_with_unknown_field_is_caught_at_load(tmp_path):
    message = _error(tmp_path, VALID.replace("Improve {{ first }}", "Improve {{ frist }}"))
    assert ":8: steps[1].prompt: template uses unknown field(s) frist; available here: first, seed" in message


def test_later_step_field_is_not_visible_earlier(tmp_path):
    message = _error(tmp_path, VALID.replace("Summarise {{ seed.text }}", "Summarise {{ second }}"))
    assert "steps[0].prompt: template uses unknown field(s) second" in message


def test_unknown_teacher_reference(tmp_path):
    message = _error(tmp_path, VALID.replace('    prompt: "Improve', '    teacher: judge\n    prompt: "Improve'))
    assert ":8: steps[1].teacher: unknown teacher 'judge'; valid: default" in message


def test_duplicate_step_id(tmp_path):
    message = _error(tmp_path, VALID.replace("- id: second", "- id: first").replace("{{ second }}", "{{ first }}"))
    assert "steps[1].id: duplicate step id 'first'" in message


def test_missing_template_file(tmp_path):
    message = _error(tmp_path, VALID.replace('"Summarise {{ seed.text }}"', "prompts/missing.j2"))
    assert "template file not found" in message and "missing.j2" in message and ":6:" in message


def test_environment_interpolation_and_missing_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SG_TEST_MODEL", "from-env")
    path = tmp_path / "wf.yaml"
    path.write_text(VALID.replace("model: m", "model: \"${SG_TEST_MODEL}\""))
    assert load_workflow(path).teachers["default"].model == "from-env"
    path.write_text(VALID.replace("model: m", "model: \"${SG_TEST_UNSET_VAR:-fallback}\""))
    assert load_workflow(path).teachers["default"].model == "fallback"
    message = _error(tmp_path, VALID.replace("model: m", "model: \"${SG_TEST_UNSET_VAR}\""))
    assert ":3: environment variable SG_TEST_UNSET_VAR is not set" in message


def test_invalid_yaml_and_missing_file(tmp_path):
    assert ":3: invalid YAML: expected ',' or '}'" in _error(tmp_path, "name: t\nseeds: {path: x\nsteps: 1\n")
    with pytest.raises(UserError, match="file not found"):
        load_workflow(tmp_path / "absent.yaml")


def test_workflow_hash_ignores_paths_and_concurrency_but_not_prompts(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(VALID)
    base = load_workflow(path).workflow_hash
    path.write_text(VALID.replace("model: m,", "model: m, max_in_flight: 3,"))
    assert load_workflow(path, out=str(tmp_path / "elsewhere"), limit=2).workflow_hash == base
    path.write_text(VALID.replace("Improve", "Polish"))
    assert load_workflow(path).workflow_hash != base


@pytest.mark.parametrize("workflow", sorted((REPO / "workflows").glob("*.yaml")), ids=lambda p: p.stem)
def test_builtin_workflows_pass_check(workflow):
    result = synthgen_cli("check", str(workflow))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ")


def test_check_cli_prints_one_line_without_traceback(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(VALID.replace("- id: first", "- id: first\n    tempreature: 0"))
    result = synthgen_cli("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unknown key 'tempreature'" in lines[0]


def test_config_layer_and_workflow_schema_import_no_heavy_machinery():
    """The config layer, and the workflow schema assembled from every kind, load without Ray,
    HTTP clients, Arrow or DuckDB (`synthgen check` stays instant)."""
    import subprocess
    import sys

    code = (
        "import sys, synthgen.config.workflow, synthgen.config.recipe, synthgen.config.curate\n"
        "heavy = [m for m in ('ray', 'openai', 'pyarrow', 'duckdb', 'numpy', 'synthgen.engine') if m in sys.modules]\n"
        "assert not heavy, ('config', heavy)\n"
        "import synthgen.engine.registry\n"
        "heavy = [m for m in ('ray', 'openai', 'pyarrow', 'duckdb', 'aiohttp', 'docker') if m in sys.modules]\n"
        "assert not heavy, ('schema', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


EVERY_KIND = """name: pinned
seeds: {path: seeds.jsonl, kind: code, near_dedup: 0.9, decontaminate: {benchmarks: [humaneval], ngram: 8}}
teacher: {model: m, base_url: "http://127.0.0.1:9/v1", temperature: 0.3, max_tokens: 100, seed: 7}
teachers:
  judge: {model: j, base_url: "http://127.0.0.1:9/v1", frequency_penalty: 0.5}
steps:
  - id: task
    system: "You write tasks."
    examples: [{user: "u {{ seed.text }}", assistant: "a"}]
    prompt: "Task for {{ seed.text }}"
    max_tokens: 50
  - id: code
    prompt: "CODE {{ task }}"
    parse: code_block
    n: 2
    stop: ["END"]
    on_length: continue
  - id: meta
    prompt: "JSON {{ task }}"
    parse: json
    json_schema: {type: object}
    conversation: continue
  - id: pair
    from: task
    parse: regex
    pattern: "(?P<q>.*)"
  - id: checked
    validate: [run]
  - id: fix
    revise: code
    until: run
    max_rounds: 2
  - id: grade
    judge: code
    teacher: judge
    rubric: "Is {{ task }} good?"
    min_score: 3
  - id: better
    judge: code
    rubric: "again"
    must_exceed: grade
validators:
  run: {kind: exec, code: code, calls: task, reference: seed, timeout_s: 3}
  decontaminate: {fields: [code], ngram: 9}
  dedup: {jaccard: 0.7}
messages:
  - {role: user, content: "{{ task }}"}
  - {role: assistant, content: "{{ code }}"}
"""


def test_every_kind_keeps_the_workflow_hash_of_earlier_releases(tmp_path):
    """Runs resume only under the same hash: the schema's shape (built from the kinds' modules)
    must hash a workflow that uses every step and validator kind as release 0.1 did."""
    path = tmp_path / "wf.yaml"
    path.write_text(EVERY_KIND)
    assert load_workflow(path).workflow_hash == "bfa3f5189d5c895e"


def test_unknown_step_keys_list_the_kinds_own_keys_first(tmp_path):
    message = _error(tmp_path, VALID.replace("  - id: second\n", "  - id: second\n    from: first\n    pares: json\n"))
    assert "unknown key 'pares' in steps[1]; valid keys: id, from, parse, pattern, json_schema" in message


def test_validator_key_and_kind_mistakes_name_the_valid_choices(tmp_path):
    with_validators = VALID.replace("messages:", "validators:\n  dedup: {jacard: 0.5}\nmessages:")
    assert ":10: unknown key 'jacard' in validators.dedup; valid keys: fields, jaccard, kind" in _error(tmp_path, with_validators)
    message = _error(tmp_path, with_validators.replace("dedup: {jacard: 0.5}", "mine: {kind: nope}"))
    assert ":10: validators.mine: unknown kind 'nope'; valid kinds: " in message and "novelty" in message and "exec" in message


def test_a_uri_synthgen_cannot_use_is_a_clear_error_never_a_local_folder(tmp_path):
    """`ftp://host/run` must not become a folder named `ftp:`; seeds are not read from object
    storage (run directories are)."""
    message = _error(tmp_path, VALID + "output: {dir: \"ftp://host/run\"}\n")
    assert ":12: output.dir:" in message and "ftp://host/run: ftp:// is not a storage synthgen can use" in message
    assert "s3://BUCKET/PREFIX" in message
    message = _error(tmp_path, VALID.replace("path: seeds.jsonl", "path: s3://bucket/seeds.jsonl"))
    assert "s3://bucket/seeds.jsonl: object storage holds run directories" in message
    (tmp_path / "wf.yaml").write_text(VALID)
    for args in [("run", str(tmp_path / "wf.yaml"), "--out", "hdfs://node/run"), ("inspect", "ftp://host/run"),
                 ("run", str(tmp_path / "wf.yaml"), "--seeds", "gs://bucket/seeds.jsonl")]:
        result = synthgen_cli(*args, cwd=tmp_path)
        assert result.returncode == 1 and ("is not a storage synthgen can use" in result.stderr
                                           or "object storage holds run directories" in result.stderr), result.stderr
        assert "Traceback" not in result.stderr
    assert not any(tmp_path.glob("*:")), "a local folder named after the URI scheme"
