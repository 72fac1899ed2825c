"""The layers stay layers: imports only run down (interface → pipelines → runtime → seeds,
storage → engine → config), Ray is imported in `runtime` only, and every kind module declares
its kind. Read from the source's own import statements, function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "synthgen"
# A layer may import itself and the layers listed after it.
LAYERS = ["interface", "pipelines", "runtime", "seeds", "storage", "engine", "config"]
ALLOWED = {
    "interface": set(LAYERS),
    "pipelines": {"pipelines", "runtime", "seeds", "storage", "engine", "config"},
    "runtime": {"runtime", "seeds", "storage", "engine", "config"},
    "seeds": {"seeds", "engine", "config"},
    "storage": {"storage", "engine", "config"},
    "engine": {"engine", "config"},
    "config": {"config"},
}


def _imports(file: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _layer_files():
    for layer in LAYERS:
        for file in sorted((PACKAGE / layer).rglob("*.py")):
            yield layer, file


def test_every_module_of_the_package_is_in_a_layer():
    loose = {p.name for p in PACKAGE.glob("*.py")}
    # Beside the entry points, only the stand-ins for a remote teacher (tests and benchmarks use them).
    assert loose == {"__init__.py", "__main__.py", "scripted_teacher.py", "scripted_policy.py",
                     "scripted_batches.py"}, loose
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_only_run_down(layer):
    wrong = []
    for owner, file in _layer_files():
        if owner != layer:
            continue
        for line, module in _imports(file):
            parts = module.split(".")
            if parts[0] == "synthgen" and len(parts) > 1 and parts[1] not in ALLOWED[layer]:
                wrong.append(f"{file.relative_to(REPO)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_only_the_runtime_imports_ray():
    wrong = [f"{file.relative_to(REPO)}:{line}" for layer, file in _layer_files() if layer != "runtime"
             for line, module in _imports(file) if module.split(".")[0] == "ray"]
    assert not wrong, wrong


def test_each_kind_module_declares_its_kind():
    from synthgen.engine.registry import STEP_KINDS, VALIDATOR_KINDS

    for folder, kinds in (("steps", STEP_KINDS), ("validators", VALIDATOR_KINDS)):
        modules = {p.stem for p in (PACKAGE / "engine" / folder).glob("*.py")} - {"__init__", "base"}
        assert {kind.run.__module__ if folder == "steps" else kind.build.__module__ for kind in kinds.values()} == {
            f"synthgen.engine.{folder}.{module}" for module in modules}


def test_the_console_script_points_at_the_cli():
    """`synthgen ...` (README) runs what `python -m synthgen` runs: the entry point must resolve."""
    import importlib
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as handle:
        target = tomllib.load(handle)["project"]["scripts"]["synthgen"]
    module, function = target.split(":")
    assert callable(getattr(importlib.import_module(module), function)), target
