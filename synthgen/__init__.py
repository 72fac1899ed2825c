"""synthgen: Phi-4-style synthetic training data from seeds, a teacher LLM and validators.

Python API: `synthgen.run("workflows/instruction_reversal.yaml", out="out/x")` does what
`synthgen run` does and returns the run report. Layers, bottom up: `config` (the YAML schema,
pure data), `engine` (one seed through a workflow; the registry of step and validator kinds),
`seeds` and `storage`, `runtime` (Ray), `pipelines` (curation, mixtures, decontamination of
files), `interface` (CLI, demo, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def run(workflow: str | Path, *, address: str | None = None, **overrides: Any):
    """Run or resume a workflow file; overrides are those of `synthgen run` (out, seeds, teacher_url, model, limit)."""
    from synthgen.interface.api import run as run_file

    return run_file(workflow, address=address, **overrides)
