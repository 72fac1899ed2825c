"""What every validator is: a named async check over a sample's fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Check:
    passed: bool
    detail: str = ""
    # What a revise prompt shows the teacher: failing tests and tracebacks, a critique, ...
    evidence: str = ""
    # False when rewriting the checked answer cannot help (the tests themselves are broken).
    fixable: bool = True


class Validator(Protocol):
    name: str
    # The fields the verdict depends on: an unchanged set of values is not checked twice.
    fields: tuple[str, ...]

    async def check(self, fields: dict[str, Any], record_id: str) -> Check: ...
