"""Validators: named checks on a sample (`exec` in the sandbox, ...). Each kind is one module;
`build` maps a workflow's `validators:` block to ready instances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthgen.engine.validators.base import Check, Validator

__all__ = ["Check", "Validator", "build"]


def build(specs: dict[str, Any], sandbox: Callable[[], Any]) -> dict[str, Validator]:
    """`sandbox()` opens the worker's sandbox pool on first need (only exec validators use it)."""
    built: dict[str, Validator] = {}
    for name, spec in specs.items():
        if spec.kind == "exec":
            from synthgen.engine.validators.exec import ExecCheck

            built[name] = ExecCheck(name, spec, sandbox())
        else:
            raise ValueError(f"no validator implements kind {spec.kind!r}")
    return built
