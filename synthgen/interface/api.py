"""The Python API behind `synthgen run` and `synthgen.run`: a workflow from its file to a
finished (or resumable) run, its seeds curated first when the workflow asks for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthgen.config.workflow import SeedSource, WorkflowBase
from synthgen.engine.registry import load_workflow
from synthgen.pipelines.curate.pipeline import curated_seeds, curated_source
from synthgen.runtime.runner import RunReport
from synthgen.runtime.runner import run as run_on_ray
from synthgen.seeds.load import SeedCounts, SeedSet, load_seeds


def seeds_of(workflow: WorkflowBase) -> SeedSet:
    """The workflow's seeds in memory (estimates), curated first when it asks for it."""
    return curated_seeds(workflow.seeds) if workflow.seeds.curate is not None else load_seeds(workflow.seeds)


def source_of(workflow: WorkflowBase) -> tuple[SeedSource, SeedCounts]:
    """The plain source a run streams, and the seeds curation already dropped."""
    return curated_source(workflow.seeds) if workflow.seeds.curate is not None else (workflow.seeds, SeedCounts())


def run_workflow(workflow: WorkflowBase, *, address: str | None = None) -> RunReport:
    source, curation = source_of(workflow)
    return run_on_ray(workflow, source=source, curation=curation, address=address)


def run(workflow: str | Path, *, address: str | None = None, **overrides: Any) -> RunReport:
    """Run or resume a workflow file; overrides are those of `synthgen run` (out, seeds,
    teacher_url, model, limit)."""
    return run_workflow(load_workflow(workflow, **overrides), address=address)
