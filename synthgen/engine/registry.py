"""The one registry: every step kind in `synthgen/engine/steps/` and every validator kind in
`synthgen/engine/validators/` (one module each, declaring `KIND`), found by looking in those
folders; and the workflow schema assembled from their specs. Adding a kind is adding its
module: the YAML union, the valid keys, the `check` errors and the runner all derive from here."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace
from types import ModuleType
from typing import Any

from synthgen.config.kinds import StepSpec, ValidatorSpec
from synthgen.config.workflow import WorkflowBase, workflow_model
from synthgen.engine import steps, validators
from synthgen.engine.steps.base import StepKind
from synthgen.engine.validators.base import InProcess, Services, Validator, ValidatorKind

_SHARED_MODULE = "base"  # what the kinds of a folder share; not a kind


def _discover(package: ModuleType, kind_type: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name == _SHARED_MODULE:
            continue
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, kind_type):
            raise TypeError(f"{module.__name__} declares no KIND = {kind_type.__name__}(...)")
        if kind.name in found:
            raise TypeError(f"{module.__name__}: kind '{kind.name}' is declared twice")
        found[kind.name] = kind
    return found


STEP_KINDS: dict[str, StepKind] = _discover(steps, StepKind)
VALIDATOR_KINDS: dict[str, ValidatorKind] = _discover(validators, ValidatorKind)
_STEP_KIND_OF_SPEC = {kind.spec: kind for kind in STEP_KINDS.values()}

Workflow: type[WorkflowBase] = workflow_model(
    {name: (kind.spec, kind.marker) for name, kind in STEP_KINDS.items()},
    [kind.spec for kind in VALIDATOR_KINDS.values()],
)
load_workflow = Workflow.load


def step_kind(spec: StepSpec) -> StepKind:
    return _STEP_KIND_OF_SPEC[type(spec)]


def validator_kind(spec: ValidatorSpec) -> ValidatorKind:
    return VALIDATOR_KINDS[spec.kind]


def prepare_validators(workflow: WorkflowBase) -> None:
    """Each validator's per-run preparation, once, before any worker starts."""
    for name, spec in workflow.validators.items():
        prepare = validator_kind(spec).prepare
        if prepare is not None:
            prepare(name, spec, workflow)


def shared_state(spec: ValidatorSpec, shard: int = 0, shards: int = 1) -> Any | None:
    """A fresh shard of this validator's run-wide state, or None when its kind keeps none."""
    make = validator_kind(spec).shared
    return None if make is None else make(spec, shard, shards)


def build_validators(workflow: WorkflowBase, services: Services) -> dict[str, Validator]:
    """The workflow's validators, ready, by name, those that run last at the end. Without a host
    for shared state (`services.shared`), each validator's run-wide state lives in this process."""
    specs = workflow.validators
    states: dict[str, list[InProcess]] = {}

    def in_process(name: str) -> list[InProcess]:
        if name not in states:
            states[name] = [InProcess(shared_state(specs[name]))]
        return states[name]

    services = replace(services, shared=services.shared or in_process,
                       text_fields=tuple(step.id for step in workflow.steps if step.writes_text()))
    built = {name: validator_kind(spec).build(name, spec, services) for name, spec in specs.items()}
    return dict(sorted(built.items(), key=lambda item: specs[item[0]].runs_last))
