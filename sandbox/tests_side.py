"""The test harness's trusted side: runs the tests against a solution and reports each test on fd 3.

The job entry is harness.py; this module is preloaded by the agent. This process is the tests'
side and never runs a line of the solution. The solution runs in a process of its own
(solution_side.py), forked before the tests, the calls or the reference are read
(and they are deleted from disk before the solution starts: it cannot read the answers). The
tests see the solution's top-level names as `Remote` stand-ins that forward each use over a pipe
(wire.py); plain values come back as values this process rebuilds, anything else as another
`Remote`. Whatever the solution does to its own process — frames, gc, builtins, import hooks,
atexit or signal handlers, file descriptors — cannot reach the tests, the counting or the report:
only this process holds fd 3, and it is not dumpable, so the solution cannot open it through /proc.

Verdict rules:
- `==` on a solution object compares by value (type and fields), decided here: an object that
  claims to equal everything equals nothing. Ordering and arithmetic run the solution's own
  operators only between objects the tests built from a solution class they name; anywhere else a
  solution object meets an operator, the test fails and says why.
- An exception from the solution's code fails the test with the solution's traceback; only the
  tests' own errors make them `broken`. If the solution's process dies or breaks the protocol,
  every test that needed it fails.
- Zero tests run is never a pass: a test counts when it called the solution; top-level asserts
  count as `<module>` when one ran and the solution was called.
- The tests run as written: their own definitions shadow the solution's names, as in Python, so
  a tests file carrying its own copy of the function tests nothing of the solution's (and says so)
  unless it imports the solution's after. A solution that defines a test, a function the tests
  call to run their checks (HumanEval's `check`), or a builtin the tests use, fails with the
  names; the tests never see a solution name that shadows a builtin.

The tests may be pytest-style `test_*` functions, `unittest.TestCase` classes, or bare top-level
asserts. Names defined by the solution are visible to the tests, and `import solution` works.
Calls are Python expressions, one per line, each a test: the solution must return what the
trusted reference implementation returns. Standard library only.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import importlib
import inspect
import json
import linecache
import os
import select
import sys
import traceback
import types
import unittest

import wire

MAX_TRACEBACK = 4000
EXIT_GRACE_S = 0.2
NOT_IMPORTED = frozenset({"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"})
PR_SET_DUMPABLE = 4
HOME = os.path.dirname(os.path.abspath(__file__))
ASSERTION_COUNTER = "__synthgen_assertion__"
UNTRUSTED, INSTANCE, CLASS = 0, 1, 2
SYMBOLS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "add": "+", "sub": "-", "mul": "*", "truediv": "/",
           "floordiv": "//", "mod": "%", "pow": "**", "matmul": "@", "and_": "&", "or_": "|", "xor": "^",
           "lshift": "<<", "rshift": ">>", "eq": "=="}


# -- what the solution did wrong ---------------------------------------------------------------
class SolutionError(Exception):
    """An exception of the solution's that has no counterpart here."""


class SolutionGone(BaseException):
    """The solution's process died or broke the protocol. A BaseException: the tests'
    `except Exception` must not swallow it."""


class Refused(BaseException):
    """The tests applied an operator to a solution object whose own answer cannot be trusted. A
    BaseException, so `assertRaises(TypeError)` or `except Exception` in the tests cannot take it
    for the error they expect; the test fails even if they catch it anyway."""


def _blame(exc: BaseException, remote_traceback: str = "") -> BaseException:
    exc.__synthgen_solution__ = remote_traceback or "(raised on the tests' side)"
    return exc


def _solution_traceback(exc: BaseException | None) -> str | None:
    """The solution's traceback when `exc` (or what it was raised from) came from the solution."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found = getattr(exc, "__synthgen_solution__", None)
        if isinstance(found, str):
            return found
        exc = exc.__cause__ or exc.__context__
    return None


# -- the solution's process --------------------------------------------------------------------
class Solution:
    """The solution's process, seen from the tests."""

    def __init__(self, path: str):
        solution_reads, tests_write = os.pipe()
        tests_read, solution_writes = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            _become_solution(path, solution_reads, solution_writes, (tests_read, tests_write))
        os.close(solution_reads)
        os.close(solution_writes)
        self.endpoint = wire.Endpoint(wire.Channel(tests_read, tests_write),
                                      wire.Objects("t", self._remote, callbacks_only=True, reference=_reference_of))
        self.remotes: dict[int, Remote] = {}
        self.mirrors: dict[int, type] = {}
        self.gone: str | None = None
        self.refusals: list[str] = []
        self.requests = 0

    def close(self) -> None:
        """Let the solution's process end: it sees the wire close, flushes what it printed and
        exits (the agent waits for its output and kills whatever is left)."""
        os.close(self.endpoint.channel.write_fd)

    def load(self) -> dict:
        """Start the solution; its top-level names (values and `Remote`s)."""
        reply = self._exchange({"op": "load"})
        if reply.get("re") != "ok":
            raise self._exception(reply.get("error") or {})
        names = self._decode(reply.get("value"))
        if not isinstance(names, dict):
            raise self._broke("the solution's names are not a mapping")
        return names

    def ask(self, op: str, target: int, **fields):
        return self._settle(self._exchange({"op": op, "target": target, **fields}), state=op == "snapshot")

    def call(self, target: int, args: tuple, kwargs: dict):
        """Call a solution function; lists, dicts and sets it changed in place change here too."""
        reply = self._exchange({"op": "call", "target": target, "args": self.encode(list(args)),
                                "kwargs": self.encode(dict(kwargs))})
        value = self._settle(reply)
        changed = reply.get("changed")
        for key, arg in [*enumerate(args), *kwargs.items()] if isinstance(changed, dict) else ():
            if type(arg) in wire.MUTABLE and str(key) in changed:
                _update_in_place(arg, self._decode(changed[str(key)]))
        return value

    def encode(self, value):
        try:
            return self.endpoint.objects.encode(value)
        except wire.ProtocolError as exc:
            raise TypeError(f"cannot pass this to the solution: {exc}") from None

    def _settle(self, reply: dict, state: bool = False):
        if reply.get("re") == "stop":
            raise StopIteration
        if reply.get("re") == "raise":
            raise self._exception(reply.get("error") or {})
        return self._decode(reply.get("value"), state=state)

    def _exchange(self, message: dict) -> dict:
        if self.gone:
            raise _blame(SolutionGone(self.gone))
        self.requests += 1
        try:
            return self.endpoint.request(message)
        except wire.ProtocolError as exc:
            raise self._broke(str(exc)) from None

    def _decode(self, data, state: bool = False):
        try:
            return wire.decode(data, self.endpoint.objects.resolve, state=state)
        except wire.ProtocolError as exc:
            raise self._broke(str(exc)) from None

    def refuse(self, why: str) -> BaseException:
        """A check the solution's object cannot be trusted to answer: the test fails, whatever it catches."""
        self.refusals.append(why)
        return _blame(Refused(why))

    def _broke(self, why: str) -> BaseException:
        self.gone = f"the solution's process broke the protocol: {why}"
        try:
            # The wire closes a moment before the process is gone: give it that moment.
            exited = os.pidfd_open(self.pid)
            select.select([exited], [], [], EXIT_GRACE_S)
            os.close(exited)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                ended = f"signal {-code}" if code < 0 else f"exit code {code}"
                self.gone = f"the solution's process ended ({ended}) while the tests needed it"
        except (ChildProcessError, ProcessLookupError):
            pass
        return _blame(SolutionGone(self.gone))

    def _remote(self, info: dict):
        key = info.get("id")
        if not isinstance(key, int):
            raise wire.ProtocolError("a handle without an id")
        if info.get("kind") == "exception":
            return self._mirror(info)
        if key not in self.remotes:
            self.remotes[key] = Remote(self, info)
        return self.remotes[key]

    def _mirror(self, info: dict) -> type:
        """A class here for an exception class of the solution's, so `except TheirError` and
        `assertRaises(TheirError)` work on what the solution raises."""
        key = info["id"]
        if key not in self.mirrors:
            base = _builtin_exception(str(info.get("base"))) or Exception
            name = str(info.get("name") or "SolutionError")
            self.mirrors[key] = type(name if name.isidentifier() else "SolutionError", (base,), {"__module__": "solution"})
        return self.mirrors[key]

    def _exception(self, error: dict) -> BaseException:
        name, text = str(error.get("type", "Exception")), str(error.get("text", ""))[:2000]
        remote_traceback = _trim_traceback(str(error.get("traceback", "")))
        described = error.get("class")
        if error.get("builtin") is True:
            kind = _builtin_exception(name)
        elif isinstance(described, dict) and described.get("kind") == "exception" and isinstance(described.get("id"), int):
            kind = self._mirror(described)
        else:
            kind = None
        if kind is None:
            return _blame(SolutionError(f"{name}: {text}" if name.isidentifier() else text), remote_traceback)
        try:
            args = wire.decode(error.get("args", []), lambda info: "<object>")
            exc = kind(*args) if isinstance(args, list) else kind(text)
        except Exception:  # noqa: BLE001 - args the class does not take
            exc = kind(text)
        return _blame(exc, remote_traceback)


def _builtin_exception(name: str) -> type | None:
    """The builtin exception class a solution's exception may be raised as here. Never
    StopIteration: raised from a call it would end the tests' loop early (`all(map(check, cases))`
    passes); never a BaseException like SystemExit, which the tests' runner would not catch."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, (StopIteration, StopAsyncIteration)):
        return kind
    return None


def _become_solution(path: str, read_fd: int, write_fd: int, tests_ends: tuple[int, int]) -> None:
    """The forked child: drop everything of the tests' side, wait for the go, serve the solution."""
    try:
        os.environ.pop("SYNTHGEN_REPORT_NONCE", None)
        for fd in (3, *tests_ends):
            try:
                os.close(fd)
            except OSError:
                pass
        channel = wire.Channel(read_fd, write_fd)
        if channel.receive().get("op") != "load":
            os._exit(0)
        import solution_side

        solution_side.serve(path, channel)
    except BaseException:  # noqa: BLE001 - the tests' side sees the wire close; the reason goes to stderr
        traceback.print_exc()
    finally:
        os._exit(0)


def _update_in_place(arg, new) -> None:
    if type(new) is not type(arg) or new == arg:
        return
    if isinstance(arg, (list, bytearray)):
        arg[:] = new
    else:
        arg.clear()
        arg.update(new)


def _reference_of(obj) -> dict | None:
    if isinstance(obj, Remote):
        return {"$": "handle", "side": "s", "id": object.__getattribute__(obj, "_info")["id"]}
    return None


def _trim_traceback(text: str) -> str:
    """The solution's traceback without the frames of the wire that carried it."""
    lines, keep = [], True
    for line in text.splitlines():
        if line.startswith('  File "'):
            keep = not line.startswith(f'  File "{HOME}')
        elif not line.startswith("    "):
            keep = True
        if keep:
            lines.append(line)
    return "\n".join(lines)[-MAX_TRACEBACK:]


# -- stand-ins for the solution's objects ------------------------------------------------------
class Remote:
    """A solution object, used from the tests. Every use is a request to the solution's process,
    except the ones that decide a verdict (see the module docstring)."""

    __slots__ = ("_solution", "_info", "_trust")

    def __init__(self, solution: Solution, info: dict, trust: int = UNTRUSTED):
        object.__setattr__(self, "_solution", solution)
        object.__setattr__(self, "_info", info)
        object.__setattr__(self, "_trust", trust)

    def _ask(self, op: str, **fields):
        return self._solution.ask(op, self._info["id"], **fields)

    def _encode(self, value):
        return self._solution.encode(value)

    def _trusted(self, result, level: int = INSTANCE):
        if isinstance(result, Remote) and result._trust < level:
            object.__setattr__(result, "_trust", level)
        return result

    def _typed(self, value, kind: type | tuple, what: str):
        if type(value) not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self._solution.refuse(f"the solution's {what} gave a {type(value).__name__}, not a {kind}")
        return value

    def _describe(self) -> str:
        return f"a {self._info.get('type', '?')} object of the solution's"

    def __call__(self, *args, **kwargs):
        result = self._solution.call(self._info["id"], args, kwargs)
        return self._trusted(result) if self._trust == CLASS else result

    def __getattr__(self, name):
        if name in Remote.__slots__:
            raise AttributeError(name)
        return self._ask("getattr", name=name)

    def __setattr__(self, name, value):
        self._ask("setattr", name=name, value=self._encode(value))

    def __delattr__(self, name):
        self._ask("delattr", name=name)

    def __iter__(self):
        result = self._ask("iter")
        return result if isinstance(result, Remote) else iter(result)

    def __next__(self):
        return self._ask("next")

    def __len__(self):
        length = self._typed(self._ask("len"), int, "len()")
        if length < 0:
            raise self._solution.refuse("the solution's len() is negative")
        return length

    def __bool__(self):
        return self._typed(self._ask("bool"), bool, "truth value")

    def __repr__(self):
        return self._typed(self._ask("repr"), str, "repr()")

    def __str__(self):
        return self._typed(self._ask("str"), str, "str()")

    def __format__(self, spec):
        return self._typed(self._ask("format", value=spec), str, "format()")

    def __hash__(self):
        return self._typed(self._ask("hash"), int, "hash()")

    def __int__(self):
        return self._typed(self._ask("int"), int, "int()")

    def __index__(self):
        return self._typed(self._ask("index"), int, "index()")

    def __float__(self):
        return self._typed(self._ask("float"), float, "float()")

    def __round__(self, digits=None):
        return self._ask("round", value=digits)

    def __getitem__(self, key):
        return self._ask("getitem", value=self._encode(key))

    def __setitem__(self, key, value):
        self._ask("setitem", key=self._encode(key), value=self._encode(value))

    def __delitem__(self, key):
        self._ask("delitem", value=self._encode(key))

    def __enter__(self):
        return self._ask("enter")

    def __exit__(self, *exc_info):
        self._ask("exit")
        return False

    def __instancecheck__(self, obj):
        return self._typed(self._ask("instancecheck", value=self._encode(obj)), bool, "isinstance()")

    def __subclasscheck__(self, cls):
        return self._typed(self._ask("subclasscheck", value=self._encode(cls)), bool, "issubclass()")

    def __contains__(self, item):
        if self._trust:
            return self._typed(self._ask("contains", value=self._encode(item)), bool, "`in`")
        # Asking "do you contain x?" hands the solution the answer; its items are compared here.
        try:
            iterator = iter(self)
        except Exception as exc:  # noqa: BLE001
            raise self._solution.refuse(f"`in` on {self._describe()} that cannot be iterated: its own answer "
                                        f"is not trusted; return a list, set or dict") from exc
        return any(element is item or element == item for element in iterator)

    def _state(self) -> wire.State:
        state = self._ask("snapshot")
        if not isinstance(state, wire.State):
            raise self._solution._broke("an object's snapshot is not an object's state")
        return state

    def __eq__(self, other):
        if isinstance(other, Remote):
            if other._solution is self._solution and other._info["id"] == self._info["id"]:
                return True
            if self._trust and other._trust:
                return self._typed(self._operate("eq", other), bool, "==")
            return self._state() == other._state()
        return self._state() == other

    def __ne__(self, other):
        return not self.__eq__(other)

    def _operate(self, name: str, other, reflected: bool = False):
        if not (self._trust and isinstance(other, Remote) and other._trust):
            left, right = (other, self) if reflected else (self, other)
            raise self._solution.refuse(
                f"{_describe(left)} {SYMBOLS.get(name, name)} {_describe(right)}: the solution's own operator would "
                f"decide this check; return plain values (numbers, strings, lists, dicts) where the tests compare them")
        return self._trusted(self._ask("operator", name=name, others=[self._encode(other)], reflected=reflected))

    def _unary(self, name: str):
        result = self._ask("operator", name=name, others=[])
        return self._trusted(result) if self._trust else result

    def __neg__(self):
        return self._unary("neg")

    def __pos__(self):
        return self._unary("pos")

    def __abs__(self):
        return self._unary("abs")

    def __invert__(self):
        return self._unary("invert")


def _describe(value) -> str:
    return value._describe() if isinstance(value, Remote) else f"the {type(value).__name__} {_short(value)}"


def _add_operators() -> None:
    def binary(name: str, reflected: bool):
        return lambda self, other: self._operate(name, other, reflected)

    for name in ("lt", "le", "gt", "ge"):
        setattr(Remote, f"__{name}__", binary(name, False))
    for name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift", "rshift"):
        function = name + "_" if name in ("and", "or") else name
        setattr(Remote, f"__{name}__", binary(function, False))
        setattr(Remote, f"__r{name}__", binary(function, True))


_add_operators()


# -- what the tests are ------------------------------------------------------------------------
class TestsFile:
    """The tests' source, read and parsed before the solution starts."""

    def __init__(self, source: str, path: str):
        self.path = path
        self.tree = ast.parse(source, path)
        top = self.tree.body
        self.defined = {node.name for node in top if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self.imported = {(alias.asname or alias.name).split(".")[0] for node in top
                         if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        self.tests = {node.name for node in top if _is_test(node)}
        # Functions the file itself calls as statements: HumanEval's `check(candidate)`.
        self.drivers = {node.value.func.id for node in top if isinstance(node, ast.Expr)
                        and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)} & self.defined
        self.mentioned = {node.id for node in ast.walk(self.tree) if isinstance(node, ast.Name)} | {
            node.attr for node in ast.walk(self.tree) if isinstance(node, ast.Attribute)}

    def code(self):
        """The tests as written (their own definitions shadow the solution's names, as in Python),
        with every assert counted."""
        return compile(ast.fix_missing_locations(_CountAsserts().visit(self.tree)), self.path, "exec")


def _is_test(node: ast.stmt) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name.startswith("test")
    if isinstance(node, ast.ClassDef):
        bases = {getattr(base, "attr", getattr(base, "id", "")) for base in node.bases}
        return node.name.startswith("Test") or any("TestCase" in base for base in bases)
    return False


class _CountAsserts(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert):
        count = ast.Expr(ast.Call(ast.Name(ASSERTION_COUNTER, ast.Load()), [], []))
        return [ast.copy_location(count, node), node]


def solution_definitions(source: str) -> tuple[set[str], set[str]]:
    """Names the solution's source defines at top level, and which of them are classes."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(), set()
    defined, classes = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
            if isinstance(node, ast.ClassDef):
                classes.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return defined, classes


def clashes(names: set[str], tests: TestsFile, defined_by_solution: set[str]) -> str | None:
    """Why the solution cannot be tested as it is, when it takes names the tests need."""
    taken = sorted(names & (tests.tests | tests.drivers))
    if taken:
        return (f"the solution defines {', '.join(taken)}, which the tests define to run their checks: "
                f"a solution must not define the tests' names (rename or remove them)")
    shadowed = sorted(name for name in defined_by_solution & tests.mentioned
                      if hasattr(builtins, name) and name not in tests.defined | tests.imported)
    if shadowed:
        return (f"the solution redefines the builtin {', '.join(shadowed)}, which the tests use: "
                f"rename it so the tests can tell it from the builtin")
    return None


def _local_module(name: str):
    """A module the solution imported, imported here instead: the tests must not use the
    solution's copy (it may have patched it). Standard library only: importing runs its code
    here, and the solution chose the name."""
    if name.split(".")[0] not in sys.stdlib_module_names or name.split(".")[0] in NOT_IMPORTED:
        return None
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001
        return None
    where = os.path.realpath(getattr(module, "__file__", None) or "/")
    return None if where.startswith(os.path.realpath(os.getcwd()) + os.sep) else module


def tests_namespace(names: dict, mentioned: set[str], classes: set[str]) -> dict:
    """What the tests see of the solution: its names, with the modules they use imported here
    and the classes they name trusted to build objects."""
    visible = {}
    for name, value in names.items():
        if hasattr(builtins, name):
            continue  # the tests' `len` is the builtin, however the solution came to define one
        if isinstance(value, Remote):
            info = value._info
            if info.get("kind") == "module":
                module = str(info.get("module", ""))
                # `import math` or `from os import path`, never an alias: the solution names the module.
                value = _local_module(module) if name in mentioned and module.split(".")[-1] == name else None
                if value is None:
                    continue
            elif info.get("kind") == "class" and name in classes and name in mentioned:
                object.__setattr__(value, "_trust", CLASS)
        visible[name] = value
    return visible


# -- the report --------------------------------------------------------------------------------
class Report:
    def __init__(self, nonce: str, solution: Solution):
        self.nonce = nonce
        self.solution = solution
        self.outcomes: list[dict] = []
        self.stream = os.fdopen(3, "w", encoding="utf-8")

    def add(self, name: str, error: str | None) -> None:
        self.outcomes.append({"name": name, "passed": error is None, "error": error})

    def finish(self, stage: str, error: str | None = None) -> None:
        try:
            self.solution.close()
        except OSError:
            pass
        self.stream.write(json.dumps({"nonce": self.nonce, "stage": stage, "error": error, "tests": self.outcomes}))
        self.stream.flush()
        sys.stdout.flush()
        os._exit(0)


def _failure(exc: BaseException) -> str:
    """The test's traceback without the harness's frames, and the solution's where it raised."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if not frame.filename.startswith(HOME)]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc))
    remote = _solution_traceback(exc)
    if remote and remote != "(raised on the tests' side)":
        text += f"\nin the solution:\n{remote}"
    return ("Traceback (most recent call last):\n" + text)[-MAX_TRACEBACK:]


class Checks:
    """Counts asserts run and requests made to the solution, and what went wrong on the solution's
    side meanwhile, whether or not the test caught it."""

    def __init__(self, solution: Solution):
        self.solution = solution
        self.asserts = 0

    def __call__(self) -> None:
        self.asserts += 1

    def mark(self) -> tuple[int, int, int, str | None]:
        return self.asserts, self.solution.requests, len(self.solution.refusals), self.solution.gone

    def since(self, mark: tuple[int, int, int, str | None]) -> tuple[bool, str | None]:
        """Whether the solution was exercised since `mark` (a test that never asked it anything
        tested something else: a copy of it in the tests, say), and what it did wrong meanwhile."""
        checked = self.solution.requests > mark[1]
        if self.solution.gone != mark[3]:
            return checked, self.solution.gone
        refused = self.solution.refusals[mark[2]:]
        return checked, (refused[0] if refused else None)


SKIPPED = object()


def run_test(report: Report, checks: Checks, name: str, body) -> None:
    """Run one test; `body` returns None (passed), an error text, or SKIPPED."""
    mark = checks.mark()
    try:
        error = body()
    except BaseException as exc:  # noqa: BLE001 - anything a test raises is its failure
        error = _failure(exc)
    if error is SKIPPED:
        return
    checked, broke = checks.since(mark)
    if error is None and broke:
        error = broke
    if error is None and not checked:
        return  # it checked nothing: not a test that ran
    report.add(name, error)


def _unittest_case(case: unittest.TestCase):
    def body() -> str | None:
        result = unittest.TestResult()
        case.run(result)
        for _, problem in result.failures + result.errors:
            return problem[-MAX_TRACEBACK:]
        if result.unexpectedSuccesses:
            return "unexpected success of a test marked as an expected failure"
        return SKIPPED if result.skipped else None
    return body


def _function_test(function):
    def body() -> None:
        function()
    return body


def run_tests(solution: Solution, names: dict, tests: TestsFile, defined: set[str], classes: set[str],
              report: Report) -> None:
    reason = clashes(set(names), tests, defined)
    if reason:
        report.add("<names>", reason)
        report.finish("done")
    checks = Checks(solution)
    visible = tests_namespace(names, tests.mentioned, classes)
    namespace = {**visible, "__name__": "tests", "__builtins__": builtins, ASSERTION_COUNTER: checks}
    module = types.ModuleType("solution")
    module.__dict__.update(visible)
    module.__all__ = [name for name in visible if not name.startswith("_")]
    sys.modules["solution"] = module
    mark = checks.mark()
    try:
        exec(tests.code(), namespace)  # noqa: S102 - the tests are the oracle
    except BaseException as exc:  # noqa: BLE001
        # A TypeError from `candidate(x) - 1.0` is the solution's answer failing the check; a
        # NameError or an import that fails is the tests' own.
        answered = solution.requests > mark[1] and not isinstance(exc, (NameError, ImportError, SyntaxError))
        if isinstance(exc, AssertionError) or _solution_traceback(exc) is not None or answered:
            report.add("<module>", _failure(exc))
            report.finish("done")
        report.finish("tests", _failure(exc))
    checked, broke = checks.since(mark)
    if checked and checks.asserts > mark[0]:
        report.add("<module>", broke)
    functions = [(name, value) for name, value in namespace.items()
                 if name.startswith("test") and inspect.isfunction(value) and value.__module__ == "tests"
                 and not inspect.signature(value).parameters]
    for name, function in functions:
        run_test(report, checks, name, _function_test(function))
    loader = unittest.TestLoader()
    for value in list(namespace.values()):
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and value is not unittest.TestCase:
            for method in loader.getTestCaseNames(value):
                run_test(report, checks, f"{value.__name__}.{method}", _unittest_case(value(method)))
    if not report.outcomes:
        report.finish("tests", "no test ran: no test called the solution (a test counts when it does; "
                               "top-level asserts count when one runs and the solution is called)")
    report.finish("done")


def run_calls(solution: Solution, names: dict, calls: list[str], reference_source: str, reference_path: str,
              report: Report) -> None:
    """Differential tests: each call must give the reference implementation's result. Calls
    the reference itself rejects (it raises) are bad inputs, not tests."""
    reference: dict = {"__name__": "reference", "__builtins__": builtins}
    try:
        exec(compile(reference_source, reference_path, "exec"), reference)  # noqa: S102 - trusted reference
    except BaseException as exc:  # noqa: BLE001
        report.finish("reference", _failure(exc))
    mentioned = {node.id for call in calls for node in ast.walk(_parse_call(call)) if isinstance(node, ast.Name)}
    visible = tests_namespace(names, mentioned, set())
    answers = set()
    for call in calls:
        expected, failure = _evaluate(call, reference)
        if failure is not None:
            continue
        answers.add(_short(expected))
        got, failure = _evaluate(call, visible)
        if failure is not None:
            report.add(call, f"{call} raised, the reference returned {_short(expected)}:\n{failure}")
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


def _parse_call(call: str) -> ast.AST:
    try:
        return ast.parse(call, mode="eval")
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def _evaluate(call: str, namespace: dict) -> tuple[object, str | None]:
    try:
        return eval(compile(call, "<call>", "eval"), {**namespace, "__builtins__": builtins}), None  # noqa: S307
    except BaseException as exc:  # noqa: BLE001
        return None, _failure(exc)


def _same(got: object, expected: object) -> bool:
    try:
        if isinstance(got, float) and isinstance(expected, float):
            return got == expected or abs(got - expected) < 1e-9
        return bool(got == expected)
    except BaseException:  # noqa: BLE001 - a comparison the solution's objects refuse
        return False


def _short(value: object) -> str:
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 300 else text[:300] + "..."


def _read_and_remove(path: str) -> str:
    """The file's text; the file itself is gone before the solution starts (tracebacks still
    quote its lines: they are kept in linecache)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    os.unlink(path)
    linecache.cache[path] = (len(text), None, text.splitlines(keepends=True), path)
    return text


def main(work: str) -> None:
    """Run the job in `work`: the solution's dir, so nothing is ever imported from it here."""
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(work)]
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    solution_path = sys.argv[1]
    solution = Solution(solution_path)  # forked first: it never holds the tests, calls or reference
    report = Report(os.environ.pop("SYNTHGEN_REPORT_NONCE", ""), solution)
    options = dict(zip(sys.argv[2::2], sys.argv[3::2]))
    with open(solution_path, encoding="utf-8") as handle:
        defined, classes = solution_definitions(handle.read())
    tests = calls = reference = None
    try:
        if "--calls" in options:
            calls = [line.strip() for line in _read_and_remove(options["--calls"]).splitlines() if line.strip()]
            reference = _read_and_remove(options["--reference"])
        else:
            tests = TestsFile(_read_and_remove(options["--tests"]), options["--tests"])
    except SyntaxError as exc:
        report.finish("tests", _failure(exc))
    try:
        names = solution.load()
    except BaseException as exc:  # noqa: BLE001 - a solution that does not load is the solution's failure
        report.finish("solution", _failure(exc))
    if calls is not None:
        run_calls(solution, names, calls, reference, options["--reference"], report)
    run_tests(solution, names, tests, defined, classes, report)

