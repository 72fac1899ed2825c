"""`synthgen run --dry-run`: requests, tokens and cost before any teacher is called — learned
from a small run within 10 % of what the rest then takes, else upper bounds that hold."""

from __future__ import annotations

import re

from conftest import SHIPPED_CODE_SEEDS, synthgen_cli, workflow_yaml

from synthgen.storage.layout import commit_markers
from synthgen.storage.query import connect


def _totals(stdout: str) -> tuple[int, int, int]:
    found = re.search(r"teacher default: ([\d,]+) requests, ([\d,]+) input tokens, ([\d,]+) output tokens", stdout)
    assert found, stdout
    return tuple(int(group.replace(",", "")) for group in found.groups())


def _paid(out, leave_out: set[str]) -> tuple[int, int, int]:
    rows = connect(out).execute("""SELECT seed_id, t.tokens_in, t.tokens_out FROM (
        SELECT seed_id, unnest(turns) AS t FROM data UNION ALL SELECT seed_id, unnest(turns) AS t FROM rejects)""").fetchall()
    kept = [row for row in rows if row[0] not in leave_out]
    return len(kept), sum(row[1] for row in kept), sum(row[2] for row in kept)


def test_a_dry_run_after_a_small_run_is_within_ten_percent_of_the_rest(teacher, tmp_path):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url,
                         price_per_million_tokens="{input: 2.0, output: 8.0}")
    out = tmp_path / "out"
    assert synthgen_cli("run", str(path), "--out", str(out), "--limit", "5").returncode == 0
    first = {seed for marker in commit_markers(out) for seed in marker["seed_ids"]}
    asked = teacher.total_requests
    dry = synthgen_cli("run", str(path), "--out", str(out), "--dry-run")
    assert dry.returncode == 0 and teacher.total_requests == asked, "a dry run calls no teacher"
    assert "5 already committed, 60 to run" in dry.stdout and "learned from the 5 seeds" in dry.stdout
    requests, tokens_in, tokens_out = _totals(dry.stdout)
    cost = float(re.search(r"cost \$([\d.,]+)", dry.stdout).group(1))
    assert cost == round((tokens_in * 2.0 + tokens_out * 8.0) / 1e6, 2)
    assert synthgen_cli("run", str(path), "--out", str(out)).returncode == 0
    actual = _paid(out, first)
    for estimated, real in zip((requests, tokens_in, tokens_out), actual):
        assert abs(estimated - real) <= 0.1 * real, (estimated, real)


def test_without_a_run_to_learn_from_the_dry_run_gives_bounds_that_hold(teacher, tmp_path):
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url, max_tokens=64)
    out = tmp_path / "out"
    dry = synthgen_cli("run", str(path), "--out", str(out), "--limit", "8", "--dry-run")
    assert dry.returncode == 0 and "upper bounds from the workflow alone" in dry.stdout and teacher.total_requests == 0
    bound = _totals(dry.stdout)
    assert synthgen_cli("run", str(path), "--out", str(out), "--limit", "8").returncode == 0
    actual = _paid(out, set())
    assert all(b >= a for b, a in zip(bound, actual)), (bound, actual)


def test_a_step_without_a_bound_is_named():
    dry = synthgen_cli("run", "workflows/pivotal_tokens.yaml", "--out", "/nonexistent/pts", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"pivots +default +no bound before a run", dry.stdout)
    assert "totals leave out the steps without a bound" in dry.stdout
