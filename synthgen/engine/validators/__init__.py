"""Validators: named checks on a sample (`exec` in the sandbox, `decontaminate` against
benchmarks, `dedup` across the run). Each kind is one module; `build` maps a workflow's
`validators:` block to ready instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synthgen.engine.validators.base import Check, Validator

__all__ = ["Check", "Resources", "Validator", "build"]


def _local_registry(name: str, spec: Any):
    from synthgen.engine.validators.dedup import LocalRegistry

    return LocalRegistry(spec.jaccard)


@dataclass
class Resources:
    """What validators share with their host: the sandbox pool (opened on first need) and where
    dedup fingerprints live (in-process by default; a Ray actor in a run)."""

    sandbox: Callable[[], Any] | None = None
    dedup_registry: Callable[[str, Any], Any] = field(default=_local_registry)


def build(specs: dict[str, Any], resources: Resources) -> dict[str, Validator]:
    built: dict[str, Validator] = {}
    for name, spec in specs.items():
        if spec.kind == "exec":
            from synthgen.engine.validators.exec import ExecCheck

            if resources.sandbox is None:
                raise ValueError(f"validator {name}: exec needs a sandbox")
            built[name] = ExecCheck(name, spec, resources.sandbox())
        elif spec.kind == "decontaminate":
            from synthgen.engine.validators.decontaminate import DecontaminateCheck

            built[name] = DecontaminateCheck(name, spec)
        elif spec.kind == "dedup":
            from synthgen.engine.validators.dedup import DedupCheck

            built[name] = DedupCheck(name, spec, resources.dedup_registry(name, spec))
        else:
            raise ValueError(f"no validator implements kind {spec.kind!r}")
    # Final-gate order: a dedup claim is taken only by a sample every other check accepted.
    return dict(sorted(built.items(), key=lambda item: getattr(item[1], "runs_last", False)))
