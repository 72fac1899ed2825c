"""Runs a solution against its tests inside the sandbox and reports each test on fd 3.

Usage (as a job entry): harness.py SOLUTION.py TESTS.py

The tests may be pytest-style `test_*` functions, `unittest.TestCase` classes, or bare top-level
asserts (counted as one test named `<module>`). Names defined by the solution are visible to the
tests, and `import solution` works. The report carries a nonce the agent gave the harness before
any job code ran, so code that exits early or prints a fake report never counts as passing.
Standard library only.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import sys
import traceback
import types
import unittest

MAX_TRACEBACK = 4000


def _load(path: str, namespace: dict) -> None:
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    exec(compile(source, path, "exec"), namespace)  # noqa: S102 - running it is the point


def _load_tests(path: str, namespace: dict, solution_names: set[str]) -> None:
    """Run the tests file, minus any top-level definition of a name the solution defines:
    tests that bring their own `add` would otherwise test themselves, not the solution."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    tree.body = [node for node in tree.body if not _redefines(node, solution_names)]
    exec(compile(tree, path, "exec"), namespace)  # noqa: S102


def _redefines(node: ast.stmt, names: set[str]) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name in names
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name).split(".")[0] in names for alias in node.names)
    return False


def _has_asserts(path: str) -> bool:
    with open(path, encoding="utf-8") as handle:
        return any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(handle.read())))


def _failure(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text[-MAX_TRACEBACK:]


def _unittest_cases(namespace: dict) -> list[tuple[str, object]]:
    cases = []
    loader = unittest.TestLoader()
    for value in list(namespace.values()):
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and value is not unittest.TestCase:
            for method in loader.getTestCaseNames(value):
                cases.append((f"{value.__name__}.{method}", value(method)))
    return cases


def _run_case(case: unittest.TestCase) -> str | None:
    result = unittest.TestResult()
    case.run(result)
    problems = result.failures + result.errors
    return problems[0][1][-MAX_TRACEBACK:] if problems else None


def main() -> None:
    nonce = os.environ.pop("SYNTHGEN_REPORT_NONCE", "")
    report = os.fdopen(3, "w", encoding="utf-8")
    solution_path, tests_path = sys.argv[1], sys.argv[2]
    outcomes: list[dict] = []

    def finish(stage: str, error: str | None = None) -> None:
        report.write(json.dumps({"nonce": nonce, "stage": stage, "error": error, "tests": outcomes}))
        report.flush()
        sys.stdout.flush()
        os._exit(0)

    solution = types.ModuleType("solution")
    solution.__file__ = solution_path
    sys.modules["solution"] = solution
    try:
        _load(solution_path, solution.__dict__)
    except BaseException as exc:  # noqa: BLE001 - anything the solution raises is its failure
        finish("solution", _failure(exc))
    namespace = {k: v for k, v in solution.__dict__.items() if not k.startswith("__")}
    namespace["__name__"] = "tests"
    try:
        _load_tests(tests_path, namespace, set(namespace))
    except AssertionError as exc:
        outcomes.append({"name": "<module>", "passed": False, "error": _failure(exc)})
        finish("tests")
    except BaseException as exc:  # noqa: BLE001
        finish("tests", _failure(exc))
    functions = [
        (name, value)
        for name, value in namespace.items()
        if name.startswith("test") and inspect.isfunction(value) and value.__module__ in (None, "tests")
        and not inspect.signature(value).parameters
    ]
    cases = _unittest_cases(namespace)
    if not functions and not cases:
        if not _has_asserts(tests_path):
            finish("tests", "no tests found: no test_* function, TestCase or assert")
        outcomes.append({"name": "<module>", "passed": True, "error": None})
    for name, function in functions:
        try:
            function()
            outcomes.append({"name": name, "passed": True, "error": None})
        except BaseException as exc:  # noqa: BLE001
            outcomes.append({"name": name, "passed": False, "error": _failure(exc)})
    for name, case in cases:
        error = _run_case(case)
        outcomes.append({"name": name, "passed": error is None, "error": error})
    finish("done")


if __name__ == "__main__":
    main()
