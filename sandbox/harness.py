"""Runs a solution against its tests inside the sandbox and reports each test on fd 3.

Usage (as a job entry):
    harness.py SOLUTION.py --tests TESTS.py
    harness.py SOLUTION.py --calls CALLS.txt --reference REFERENCE.py

The tests may be pytest-style `test_*` functions, `unittest.TestCase` classes, or bare top-level
asserts (counted as one test named `<module>`). Names defined by the solution are visible to the
tests, and `import solution` works. Calls are Python expressions, one per line, each a test:
the solution must return what the trusted reference implementation returns. The report carries a nonce the agent gave the harness before
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


class _Report:
    def __init__(self, nonce: str):
        self.nonce = nonce
        self.outcomes: list[dict] = []
        self.stream = os.fdopen(3, "w", encoding="utf-8")

    def add(self, name: str, error: str | None) -> None:
        self.outcomes.append({"name": name, "passed": error is None, "error": error})

    def finish(self, stage: str, error: str | None = None) -> None:
        self.stream.write(json.dumps({"nonce": self.nonce, "stage": stage, "error": error, "tests": self.outcomes}))
        self.stream.flush()
        sys.stdout.flush()
        os._exit(0)


def _module(name: str, path: str, report: _Report, stage: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    try:
        _load(path, module.__dict__)
    except BaseException as exc:  # noqa: BLE001 - anything the code raises is its failure
        report.finish(stage, _failure(exc))
    return module


def run_tests(solution: types.ModuleType, tests_path: str, report: _Report) -> None:
    namespace = {k: v for k, v in solution.__dict__.items() if not k.startswith("__")}
    namespace["__name__"] = "tests"
    try:
        _load_tests(tests_path, namespace, set(namespace))
    except AssertionError as exc:
        report.add("<module>", _failure(exc))
        report.finish("tests")
    except BaseException as exc:  # noqa: BLE001
        report.finish("tests", _failure(exc))
    functions = [
        (name, value)
        for name, value in namespace.items()
        if name.startswith("test") and inspect.isfunction(value) and value.__module__ in (None, "tests")
        and not inspect.signature(value).parameters
    ]
    cases = _unittest_cases(namespace)
    if not functions and not cases:
        if not _has_asserts(tests_path):
            report.finish("tests", "no tests found: no test_* function, TestCase or assert")
        report.add("<module>", None)
    for name, function in functions:
        try:
            function()
            report.add(name, None)
        except BaseException as exc:  # noqa: BLE001
            report.add(name, _failure(exc))
    for name, case in cases:
        report.add(name, _run_case(case))
    report.finish("done")


def run_calls(solution: types.ModuleType, reference: types.ModuleType, calls_path: str, report: _Report) -> None:
    """Differential tests: each call must give the reference implementation's result. Calls
    the reference itself rejects (it raises) are bad inputs, not tests."""
    with open(calls_path, encoding="utf-8") as handle:
        calls = [line.strip() for line in handle if line.strip()]
    answers = set()
    for call in calls:
        expected, failure = _evaluate(call, reference.__dict__)
        if failure is not None:
            continue
        answers.add(_short(expected))
        got, failure = _evaluate(call, solution.__dict__)
        if failure is not None:
            report.add(call, f"{call} raised, the reference returned {expected!r}:\n{failure}")
        elif not _same(got, expected):
            report.add(call, f"{call} returned {_short(got)}, expected {_short(expected)}")
        else:
            report.add(call, None)
    if not report.outcomes:
        report.finish("tests", f"no usable calls: none of the {len(calls)} calls runs on the reference implementation")
    if len(report.outcomes) > 1 and len(answers) == 1:
        # Every call expects the same answer: a function returning that constant would pass.
        report.finish("tests", f"the calls do not tell implementations apart: all {len(report.outcomes)} expect "
                               f"{next(iter(answers))}; calls with other inputs are needed")
    report.finish("done")


def _evaluate(call: str, namespace: dict) -> tuple[object, str | None]:
    try:
        return eval(compile(call, "<call>", "eval"), dict(namespace)), None  # noqa: S307 - sandboxed on purpose
    except BaseException as exc:  # noqa: BLE001
        return None, _failure(exc)


def _same(got: object, expected: object) -> bool:
    try:
        return bool(got == expected) or (isinstance(got, float) and isinstance(expected, float) and abs(got - expected) < 1e-9)
    except BaseException:  # noqa: BLE001 - a hostile __eq__
        return False


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def main() -> None:
    report = _Report(os.environ.pop("SYNTHGEN_REPORT_NONCE", ""))
    options = dict(zip(sys.argv[2::2], sys.argv[3::2]))
    reference = _module("reference", options["--reference"], report, "reference") if "--reference" in options else None
    solution = _module("solution", sys.argv[1], report, "solution")
    if "--calls" in options:
        run_calls(solution, reference or solution, options["--calls"], report)
    run_tests(solution, options["--tests"], report)


if __name__ == "__main__":
    main()
