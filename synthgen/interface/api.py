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
from synthgen.seeds.load import SeedSet, load_seeds


def seeds_of(workflow: WorkflowBase) -> SeedSet:
    """The workflow's seeds, curated first when it asks for it."""
    return curated_seeds(workflow.seeds) if workflow.seeds.curate is not None else load_seeds(workflow.seeds)


def run_workflow(workflow: WorkflowBase, *, address: str | None = None) -> RunReport:
    return run_on_ray(workflow, seed_set=seeds_of(workflow), address=address)


def run(workflow: str | Path, *, address: str | None = None, **overrides: Any) -> RunReport:
    """Run or resume a workflow file; overrides are those of `synthgen run` (out, seeds,
    teacher_url, model, limit)."""
    return run_workflow(load_workflow(workflow, **overrides), address=address)
