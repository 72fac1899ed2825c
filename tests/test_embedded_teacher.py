"""The real embedded teacher (SmolLM2-135M on llama.cpp): the demo's path, structure only."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, synthgen_cli

from synthgen.storage.query import connect

EXPECTED_ROLES = {
    "instruction_reversal": ["user", "assistant"],
    "rewrite_augment": ["user", "assistant"] * 3,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ROLES))
def test_builtin_workflow_against_the_embedded_teacher(tmp_path, name):
    out = tmp_path / "out"
    result = synthgen_cli("run", str(REPO / "workflows" / f"{name}.yaml"), "--out", str(out),
                          "--limit", "3", "--teacher-url", "embedded")
    assert result.returncode == 0, result.stderr
    con = connect(out)
    settled = con.execute("SELECT seed_id FROM data UNION ALL SELECT seed_id FROM rejects").fetchall()
    assert len(settled) >= 3 and len({s[0] for s in settled}) == 3, "every seed ends as records or rejects"
    turns = con.execute("SELECT t.model, t.tokens_out, t.cache_hit FROM (SELECT unnest(turns) AS t FROM data "
                        "UNION ALL SELECT unnest(turns) AS t FROM rejects)").fetchall()
    # A revise round that repeats an earlier request is answered from the cache, never paid twice.
    paid = [(model, tokens) for model, tokens, hit in turns if not hit]
    # llama.cpp answers with the model file's path; records keep the model's name.
    assert paid and all(tokens > 0 and "smollm" in model.lower() and "/" not in model for model, tokens in paid)
    for (messages,) in con.execute("SELECT messages FROM data").fetchall():
        assert [m["role"] for m in messages] == EXPECTED_ROLES[name]
        assert all(m["content"].strip() for m in messages)
    for stage, reason in con.execute("SELECT stage, reason FROM rejects").fetchall():
        assert stage and reason, "a reject always says where and why"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seeds"]["settled"] == 3
    assert (out / "teacher.log").stat().st_size > 0, "the server's native log goes to a file, not the console"
