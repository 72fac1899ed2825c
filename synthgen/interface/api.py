"""The Python API behind `synthgen run` and `synthgen.run`: a workflow from its file to a
finished (or resumable) run, its seeds curated first when the workflow asks for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthgen.config.workflow import WorkflowBase
from synthgen.engine.registry import load_workflow
from synthgen.pipelines.curate.pipeline import curated_seeds
from synthgen.runtime.runner import RunReport
from synthgen.runtime.runner import run as run_on_ray


def run_workflow(workflow: WorkflowBase, *, address: str | None = None) -> RunReport:
    seed_set = curated_seeds(workflow.seeds) if workflow.seeds.curate is not None else None
    return run_on_ray(workflow, seed_set=seed_set, address=address)


def run(workflow: str | Path, *, address: str | None = None, **overrides: Any) -> RunReport:
    """Run or resume a workflow file; overrides are those of `synthgen run` (out, seeds,
    teacher_url, model, limit)."""
    return run_workflow(load_workflow(workflow, **overrides), address=address)
