"""Workflow YAML errors: one line naming file, line, key and the valid choices; exit 1; no traceback."""

from __future__ import annotations

import pytest

from conftest import REPO, synthgen_cli

from synthgen.config import load_workflow
from synthgen.errors import UserError

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


def test_config_layer_imports_no_heavy_machinery():
    import subprocess
    import sys

    code = (
        "import sys, synthgen.config, synthgen.yamlsource\n"
        "heavy = [m for m in ('ray', 'openai', 'pyarrow', 'duckdb') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
