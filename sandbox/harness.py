"""Runs a solution against its tests inside the sandbox and reports each test on fd 3.

Usage (as a job entry):
    harness.py SOLUTION.py --tests TESTS.py
    harness.py SOLUTION.py --calls CALLS.txt --reference REFERENCE.py

The tests may be pytest-style `test_*` functions, `unittest.TestCase` classes, or bare top-level
asserts (HumanEval's `check(candidate)` included); calls are Python expressions, one per line,
each a test: the solution must return what the trusted reference implementation returns. The
work is in tests_side.py (the trusted side, preloaded by the agent), solution_side.py (the
solution's own process) and wire.py (what crosses between them). Standard library only.
"""

import os

import tests_side

if __name__ == "__main__":
    tests_side.main(os.getcwd())
