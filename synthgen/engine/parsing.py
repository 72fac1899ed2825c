"""Turn a teacher's raw answer into a field: plain text, a fenced code block, or JSON."""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


class ParseError(Exception):
    pass


def parse(kind: str, raw: str, schema: dict | None = None) -> str:
    text = raw.strip()
    if not text:
        raise ParseError("empty answer")
    if kind == "text":
        return text
    if kind == "code_block":
        return code_block(text)
    if kind == "json":
        value = json_value(text)
        if schema is not None:
            check_schema(value, schema)
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    raise ParseError(f"unknown parser {kind!r}")


def check_schema(value: object, schema: dict) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ParseError(f"JSON does not match the schema at {where}: {error.message}")


def code_block(text: str) -> str:
    """The first non-empty fenced block (an unclosed last fence counts: answers get cut)."""
    for match in _FENCE.finditer(text):
        body = match.group(2).strip("\n")
        if body.strip():
            return body.rstrip()
    raise ParseError("no fenced code block in the answer")


def json_value(text: str) -> object:
    candidates = [m.group(2) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        start = min((i for i in (candidate.find("{"), candidate.find("[")) if i >= 0), default=-1)
        if start < 0:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate[start:])
            return value
        except json.JSONDecodeError:
            continue
    raise ParseError("no valid JSON object or array in the answer")
