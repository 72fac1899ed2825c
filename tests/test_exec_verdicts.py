"""Exec verdicts the code under test cannot forge, on every isolated backend.

Every attack is a wrong `add` (or one that does not compute at all) that tries to get `passed`
by reaching the harness instead of being right; each runs against every form of tests. Honest
solutions in every style the harness supports must keep their exact verdicts."""

from __future__ import annotations

import textwrap

import pytest

from synthgen.engine.sandbox import Job, Limits, open_sandbox
from tests.planted import humaneval_items
from tests.sandbox_engines import ISOLATED_BACKENDS, backend_options

LIMITS = Limits(wall_s=5, cpu_s=5, memory_mb=256, processes=24, output_bytes=16 * 1024)

TEST_FORMS = {
    "functions": "def test_add():\n    assert add(2, 3) == 5\n\ndef test_negative():\n    assert add(-1, 1) == 0\n",
    "unittest": textwrap.dedent("""\
        import unittest
        class TestAdd(unittest.TestCase):
            def test_add(self):
                self.assertEqual(add(2, 3), 5)
            def test_close(self):
                self.assertAlmostEqual(add(0.1, 0.2), 0.3)
        """),
    "bare": "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n",
    "humaneval": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-6\n\ncheck(add)\n",
    "import": "from solution import add\nimport solution\n\ndef test_add():\n    assert solution.add(2, 3) == 5 and add(4, 4) == 8\n",
    "map": "def test_all():\n    assert all(map(lambda case: add(*case[0]) == case[1], [((2, 3), 5), ((1, 1), 2)]))\n",
    "helper": "def expected(a, b):\n    return a + b\n\ndef test_add():\n"
              "    assert add(2, 3) == expected(2, 3) and len(str(add(10, 5))) == 2\n",
    "contains": "def test_in():\n    assert 5 in [add(2, 3)]\n    assert add(2, 3) in {5, 6}\n    assert str(add(1, 1)) == '2'\n",
}

# Each is wrong (or computes nothing) and tries to pass anyway.
ATTACKS = {
    "always_equal": """
        class Anything:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __hash__(self): return 5
            def __sub__(self, other): return self
            __rsub__ = __add__ = __radd__ = __sub__
            def __abs__(self): return self
            def __lt__(self, other): return True
            __le__ = __gt__ = __ge__ = __lt__
            def __contains__(self, item): return True
            def __bool__(self): return True
            def __str__(self): return "2"
            def __round__(self, n=None): return self
            def __float__(self): return 0.3
        def add(a, b):
            return Anything()
        """,
    "int_subclass_that_lies": """
        class Liar(int):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            __hash__ = int.__hash__
        def add(a, b):
            return Liar(0)
        """,
    "stack_walk_to_report": """
        import gc, json, os, sys
        def add(a, b):
            frame = sys._getframe()
            while frame:
                for value in list(frame.f_locals.values()):
                    if hasattr(value, "finish"):
                        value.outcomes = [{"name": "x", "passed": True, "error": None}]
                        value.finish("done")
                frame = frame.f_back
            for value in gc.get_objects():
                if hasattr(value, "finish") and hasattr(value, "outcomes"):
                    value.outcomes = [{"name": "x", "passed": True, "error": None}]
                    value.finish("done")
            main = sys.modules.get("__main__")
            if main is not None and hasattr(main, "Report"):
                try:
                    report = main.Report("", None)
                    report.add("x", None)
                    report.finish("done")
                except BaseException:
                    pass
            return 0
        """,
    "forged_reports_on_every_fd": """
        import json, os
        def add(a, b):
            forged = json.dumps({"nonce": os.environ.get("SYNTHGEN_REPORT_NONCE", ""), "stage": "done",
                                 "tests": [{"name": "x", "passed": True, "error": None}]}).encode()
            for fd in range(3, 64):
                try:
                    os.write(fd, forged)
                except OSError:
                    pass
            for pid in [os.getppid(), 1] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
                for fd in range(0, 32):
                    try:
                        handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
                        os.write(handle, forged)
                        os.close(handle)
                    except OSError:
                        pass
            os._exit(0)
        """,
    "exit_at_import": "import os\nos._exit(0)\n",
    "exit_in_call": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "keyboard_interrupt": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "stop_iteration": "def add(a, b):\n    raise StopIteration\n",
    "skip_the_test": "import unittest\ndef add(a, b):\n    raise unittest.SkipTest('not today')\n",
    "handlers_at_exit": """
        import atexit, os, signal, sys
        atexit.register(lambda: os._exit(0))
        sys.excepthook = lambda *args: os._exit(0)
        signal.signal(signal.SIGTERM, lambda *args: os._exit(0))
        def add(a, b):
            return a - b
        """,
    "patched_builtins_and_unittest": """
        import builtins, unittest
        builtins.abs = lambda value: 0
        builtins.AssertionError = type("Nope", (Exception,), {})
        builtins.isinstance = lambda *args: True
        unittest.TestCase.assertEqual = lambda *args, **kwargs: None
        unittest.TestCase.assertAlmostEqual = lambda *args, **kwargs: None
        unittest.TestResult.addFailure = lambda *args: None
        unittest.TestResult.addError = lambda *args: None
        def add(a, b):
            return a - b
        """,
    "planted_modules_and_import_hook": """
        import sys
        for name in ("unittest", "math", "json", "traceback", "inspect", "linecache"):
            with open(name + ".py", "w") as handle:
                handle.write("import os\\nos._exit(0)\\n")
        class Hook:
            def find_spec(self, *args, **kwargs):
                import os
                os._exit(0)
        sys.meta_path.insert(0, Hook())
        def add(a, b):
            return a - b
        """,
    "shadows_the_tests": """
        def check(candidate):
            pass
        def test_add():
            pass
        def test_negative():
            pass
        class TestAdd:
            pass
        def add(a, b):
            return a - b
        """,
    "shadows_helpers_at_run_time": """
        globals()["expected"] = lambda a, b: 0
        globals()["len"] = lambda value: 2
        exec("def str(value):\\n    return 'xy'")
        def add(a, b):
            return 0
        """,
    "shadows_builtins": "def abs(value):\n    return 0\ndef str(value):\n    return '2'\ndef add(a, b):\n    return a - b\n",
    "reads_the_tests": """
        import glob, re
        def add(a, b):
            for path in glob.glob("*.py") + glob.glob("*.txt"):
                if path != "solution.py":
                    source = open(path).read()
                    found = re.search(rf"(?:add|candidate)\\({a}, {b}\\),? *(?:==)? *(-?[0-9.]+)", source)
                    if found:
                        return float(found.group(1))
            return None
        """,
    "mock_any": "from unittest.mock import ANY\ndef add(a, b):\n    return ANY\n",
    "kills_the_tests": "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return a + b\n",
    "garbage_on_the_wire": """
        import os
        def add(a, b):
            for fd in range(3, 32):
                try:
                    os.write(fd, b"\\x00\\x00\\x00\\x05{}}}}")
                except OSError:
                    pass
            return a + b
        """,
    "chatty_thread_on_the_wire": """
        import os, threading, time, json
        def spam():
            body = json.dumps({"re": "ok", "value": 5}).encode()
            while True:
                for fd in range(3, 16):
                    try:
                        os.write(fd, len(body).to_bytes(4, "big") + body)
                    except OSError:
                        pass
                time.sleep(0.001)
        threading.Thread(target=spam, daemon=True).start()
        def add(a, b):
            time.sleep(0.05)
            return a - b
        """,
    "patched_wire": """
        import sys
        wire = sys.modules.get("wire")
        if wire is not None:
            wire.encode = lambda value, handle, *args, **kwargs: 5
            wire.snapshot = lambda value, *args, **kwargs: 5
        class Thing:
            pass
        def add(a, b):
            return Thing()
        """,
    "class_named_like_the_function": """
        class Anything:
            def __eq__(self, other): return True
            def __sub__(self, other): return 0.0
            __rsub__ = __sub__
        class add:
            def __new__(cls, a, b):
                return Anything()
        """,
    "huge_answer": "def add(a, b):\n    return 'x' * (40 * 2**20)\n",
    "ptrace_the_tests": """
        import ctypes, os
        def add(a, b):
            libc = ctypes.CDLL(None)
            libc.ptrace(16, os.getppid(), 0, 0)
            try:
                with open(f"/proc/{os.getppid()}/mem", "wb") as handle:
                    handle.write(b"x")
            except OSError:
                pass
            return a - b
        """,
}

RIGHT = "def add(a, b):\n    return a + b\n"
SUBTLY_WRONG = "def add(a, b):\n    return a + b if a >= 0 else a - b\n"


@pytest.fixture(scope="module", params=ISOLATED_BACKENDS)
def pool(request):
    with open_sandbox(request.param, slots=1, ceiling=LIMITS, **backend_options(request.param)) as sandbox:
        sandbox.warm_up()
        yield sandbox


def verdict(pool, solution: str, tests: str):
    return pool.run(Job.with_tests(textwrap.dedent(solution), tests, LIMITS))


@pytest.mark.parametrize("form", sorted(TEST_FORMS))
def test_right_and_wrong_solutions_keep_exact_verdicts(pool, form):
    right = verdict(pool, RIGHT, TEST_FORMS[form])
    assert right.status == "passed" and right.tests, right
    wrong = verdict(pool, "def add(a, b):\n    return a * b\n", TEST_FORMS[form])
    assert wrong.status == "failed", wrong


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_no_trick_turns_a_wrong_solution_into_a_pass(pool, attack):
    for form, tests in TEST_FORMS.items():
        result = verdict(pool, ATTACKS[attack], tests)
        assert result.status != "passed", (form, result)
    assert verdict(pool, RIGHT, TEST_FORMS["functions"]).status == "passed", "the agent is still healthy"


def test_subtly_wrong_is_failed_with_the_failing_check(pool):
    tests = "def test_add():\n    assert add(2, 3) == 5\n\ndef test_negative():\n    assert add(-4, 1) == -3\n"
    result = verdict(pool, SUBTLY_WRONG, tests)
    assert result.status == "failed" and result.failed_tests == ["test_negative"], result
    assert "assert add(-4, 1) == -3" in result.evidence


def test_taking_the_tests_names_fails_with_the_reason(pool):
    result = verdict(pool, ATTACKS["shadows_the_tests"], TEST_FORMS["humaneval"])
    assert result.status == "failed" and "the solution defines check" in result.evidence, result
    result = verdict(pool, ATTACKS["shadows_builtins"], TEST_FORMS["humaneval"])
    assert result.status == "failed" and "redefines the builtin abs" in result.evidence, result


def test_operators_of_returned_objects_fail_with_the_reason(pool):
    tolerance = "def test_close():\n    assert abs(add(0.5, 0.25) - 0.75) < 1e-6\n"
    result = verdict(pool, ATTACKS["always_equal"], tolerance)
    assert result.status == "failed" and "the solution's own operator would decide" in result.evidence, result
    # Tests that take any error for "close enough": the refusal fails the test all the same.
    swallowing = ("def test_swallowing():\n    try:\n        close = abs(add(2, 3) - 5) < 1e-9\n"
                  "    except BaseException:\n        close = True\n    assert close\n")
    assert verdict(pool, RIGHT, swallowing).status == "passed"
    result = verdict(pool, ATTACKS["always_equal"], swallowing)
    assert result.status == "failed" and "the solution's own operator would decide" in result.evidence, result


@pytest.mark.parametrize("form", ["bare", "humaneval", "functions"])
def test_an_exception_in_the_solution_is_its_failure_with_its_traceback(pool, form):
    solution = "def add(a, b):\n    return helper(a) + b\n\ndef helper(a):\n    raise ValueError('no luck with ' + str(a))\n"
    result = verdict(pool, solution, TEST_FORMS[form])
    assert result.status == "failed" and result.broken is None, result
    assert "ValueError: no luck with" in result.evidence and "in helper" in result.evidence, result.evidence


def test_zero_tests_run_is_never_a_pass(pool):
    own_copy = "def add(a, b):\n    return a + b\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    for tests in ("def helper():\n    return add(1, 2)\n", "def test_nothing():\n    pass\n", own_copy,
                  "def check(candidate):\n    assert candidate(1, 1) == 2\n", "x = 1\n"):
        result = verdict(pool, RIGHT, tests)
        assert result.status == "error" and result.broken == "tests" and "no test ran" in result.reason, (tests, result)


def test_tests_own_errors_are_broken_tests(pool):
    result = verdict(pool, RIGHT, "assert add(1, 1) == 2\nundefined_helper()\n")
    assert result.status == "error" and result.broken == "tests" and "NameError" in result.reason, result
    # The same tests choking on a wrong answer (None - 2) are the solution's failure.
    result = verdict(pool, "def add(a, b):\n    return None\n", "assert abs(add(1, 1) - 2) < 1e-9\n")
    assert result.status == "failed" and result.broken is None and "TypeError" in result.evidence, result


def test_humaneval_verdicts_stay_exact(pool):
    """All 164 canonical solutions pass; each with its last `return` made `return None` fails."""
    right, wrong = [], []
    for item in humaneval_items():
        tests = item["test"] + f"\ncheck({item['entry_point']})\n"
        code = item["prompt"] + item["canonical_solution"]
        lines = code.rstrip().split("\n")
        last = max(i for i, line in enumerate(lines) if line.strip().startswith("return"))
        lines[last] = lines[last][: len(lines[last]) - len(lines[last].lstrip())] + "return None"
        right.append(Job.with_tests(code, tests, LIMITS))
        wrong.append(Job.with_tests("\n".join(lines) + "\n", tests, LIMITS))
    assert [pool.run(job).status for job in right] == ["passed"] * len(right)
    assert [pool.run(job).status for job in wrong] == ["failed"] * len(wrong)


def test_differential_calls_cannot_borrow_the_reference(pool):
    reference = "def clamp(x, low, high):\n    return max(low, min(x, high))\n"
    calls = ["clamp(5, 0, 10)", "clamp(-3, 0, 10)", "clamp(12, 0, 10)"]
    borrowing = "from reference import clamp\n"
    assert pool.run(Job.with_calls(borrowing, calls, reference, LIMITS)).status != "passed"
    reading = "def clamp(x, low, high):\n    import reference\n    return reference.clamp(x, low, high)\n"
    assert pool.run(Job.with_calls(reading, calls, reference, LIMITS)).status != "passed"
    liar = ATTACKS["always_equal"].replace("def add(a, b):", "def clamp(x, low, high):")
    assert pool.run(Job.with_calls(textwrap.dedent(liar), calls, reference, LIMITS)).status != "passed"
    honest = "def clamp(x, low, high):\n    return low if x < low else high if x > high else x\n"
    assert pool.run(Job.with_calls(honest, calls, reference, LIMITS)).status == "passed"


def test_the_solution_cannot_open_other_processes(pool):
    """Not the tests' process, not the agent: no fd through /proc (where a forged report could be
    written), no memory."""
    probe = textwrap.dedent("""
        import os
        def add(a, b):
            opened = []
            for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
                for fd in range(16):
                    try:
                        os.close(os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK))
                        opened.append((pid, fd))
                    except OSError:
                        pass
                try:
                    open(f"/proc/{pid}/mem", "rb").close()
                    opened.append((pid, "mem"))
                except OSError:
                    pass
            print("PROCESSES", os.listdir("/proc").count(str(os.getppid())), "OPENED", opened)
            return a + b
        """)
    result = verdict(pool, probe, TEST_FORMS["functions"])
    assert result.status == "passed" and "PROCESSES 1 OPENED []" in result.stdout, result


def test_callbacks_do_not_open_the_tests_side(pool):
    """The solution holds handles to what the tests pass it; through them it may call, iterate
    and index, never read attributes (a generator's frame leads to the tests' globals)."""
    solution = textwrap.dedent("""
        import gc, sys
        wire = sys.modules["wire"]
        def total(items, key):
            endpoints = [o for o in gc.get_objects() if isinstance(o, wire.Endpoint)]
            for endpoint in endpoints:
                for target in range(1, 20):
                    for op, extra in (("getattr", {"name": "gi_frame"}), ("getattr", {"name": "__globals__"}),
                                      ("snapshot", {}), ("setattr", {"name": "x", "value": 1}),
                                      ("operator", {"name": "eq", "others": [5]})):
                        reply = endpoint.request({"op": op, "target": target, **extra})
                        print("REPLY", op, reply.get("re"))
            for name in ("gi_frame", "f_globals", "__globals__"):
                print("ATTR", name, hasattr(items, name) or hasattr(key, name))
            return 0
        """)
    tests = "def test_total():\n    assert total((x for x in [1, 2]), key=lambda x: x) == 3\n"
    result = verdict(pool, solution, tests)
    assert result.status == "failed", result
    assert "REPLY" in result.stdout and "REPLY getattr ok" not in result.stdout and "REPLY snapshot ok" not in result.stdout
    assert "REPLY setattr ok" not in result.stdout and "REPLY operator ok" not in result.stdout
    assert "ATTR" in result.stdout and "True" not in result.stdout, result.stdout


HONEST_STYLES = {
    "class_with_state": (
        """
        class Stack:
            def __init__(self):
                self.items = []
            def push(self, item):
                self.items.append(item)
                return self
            def pop(self):
                if not self.items:
                    raise IndexError("pop from an empty stack")
                return self.items.pop()
            def __len__(self):
                return len(self.items)
            def __iter__(self):
                return iter(list(self.items))
        """,
        """
        import unittest
        class TestStack(unittest.TestCase):
            def test_push_pop(self):
                stack = Stack()
                stack.push(1).push(2)
                self.assertEqual(len(stack), 2)
                self.assertEqual(stack.pop(), 2)
                self.assertIn(1, stack)
                self.assertEqual(list(stack), [1])
            def test_empty(self):
                with self.assertRaises(IndexError):
                    Stack().pop()
        """,
    ),
    "operators_of_a_named_class": (
        """
        from dataclasses import dataclass
        @dataclass
        class Vector:
            x: float
            y: float
            def __add__(self, other):
                return Vector(self.x + other.x, self.y + other.y)
            def __lt__(self, other):
                return (self.x, self.y) < (other.x, other.y)
        """,
        "def test_vectors():\n    assert Vector(1, 2) + Vector(3, 4) == Vector(4, 6)\n"
        "    assert Vector(1, 2) < Vector(2, 0)\n    assert Vector(1, 2) != Vector(2, 1)\n",
    ),
    "generators_closures_callbacks": (
        """
        import math
        def count_up(n):
            yield from range(n)
        def make_adder(k):
            return lambda x: x + k
        def apply_all(function, items):
            return [function(item) for item in items]
        def longest(words, key=len):
            return max(words, key=key)
        """,
        "def test_styles():\n    assert list(count_up(3)) == [0, 1, 2]\n    assert make_adder(2)(3) == 5\n"
        "    assert apply_all(lambda x: x * 2, [1, 2]) == [2, 4]\n"
        "    assert longest(['a', 'abc', 'ab']) == 'abc'\n    assert longest(['bb', 'a'], key=lambda w: -len(w)) == 'a'\n"
        "    assert math.isclose(math.sqrt(2) ** 2, 2)\n",
    ),
    "exceptions_of_its_own": (
        """
        from collections import namedtuple
        Point = namedtuple("Point", "x y")
        class InsufficientFunds(ValueError):
            pass
        def withdraw(balance, amount):
            if amount > balance:
                raise InsufficientFunds(f"{amount} > {balance}")
            return balance - amount
        def origin():
            return Point(0, 0)
        """,
        "import unittest\nclass TestBank(unittest.TestCase):\n    def test_it(self):\n"
        "        self.assertEqual(withdraw(10, 3), 7)\n        with self.assertRaises(InsufficientFunds):\n"
        "            withdraw(1, 3)\n        with self.assertRaises(ValueError):\n            withdraw(1, 3)\n"
        "        self.assertEqual(origin().x, 0)\n        self.assertEqual(origin(), (0, 0))\n",
    ),
    "changes_its_arguments_in_place": (
        "def sort_in_place(items):\n    items.sort()\n\ndef tally(counts, word):\n    counts[word] = counts.get(word, 0) + 1\n"
        "\ndef rotate(matrix):\n    matrix[:] = [list(row) for row in zip(*matrix[::-1])]\n",
        "def test_in_place():\n    items = [3, 1, 2]\n    sort_in_place(items)\n    assert items == [1, 2, 3]\n"
        "    counts = {}\n    tally(counts, 'a')\n    tally(counts, 'a')\n    assert counts == {'a': 2}\n"
        "    matrix = [[1, 2], [3, 4]]\n    rotate(matrix)\n    assert matrix == [[3, 1], [4, 2]]\n",
    ),
    "prints_and_plain_values": (
        "def summary(values):\n    print('summing', len(values))\n"
        "    return {'total': sum(values), 'items': tuple(values), 'unique': set(values), 'raw': bytes(values)}\n",
        "def test_summary():\n    assert summary([1, 2, 2]) == {'total': 5, 'items': (1, 2, 2), 'unique': {1, 2}, 'raw': b'\\x01\\x02\\x02'}\n",
    ),
}


@pytest.mark.parametrize("style", sorted(HONEST_STYLES))
def test_honest_solutions_in_every_style_pass(pool, style):
    solution, tests = HONEST_STYLES[style]
    result = verdict(pool, solution, textwrap.dedent(tests))
    assert result.status == "passed", result.evidence
