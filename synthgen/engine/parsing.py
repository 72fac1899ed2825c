"""Turn a teacher's raw answer into a field: plain text, a fenced code block, JSON, regex groups,
a `<think>` reasoning/answer split, or a judge's score."""

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


_THINK = re.compile(r"<think>(.*?)(?:</think>|\Z)(.*)", re.DOTALL)


def regex_groups(text: str, pattern: str) -> dict[str, str]:
    match = re.search(pattern, text, re.DOTALL)
    if match is None:
        raise ParseError(f"the pattern {pattern!r} does not match")
    return {name: (value or "").strip() for name, value in match.groupdict().items()}


def think_split(text: str) -> dict[str, str]:
    """`<think>reasoning</think> answer` into its two parts; both must be non-empty."""
    match = _THINK.search(text)
    if match is None:
        raise ParseError("no <think>...</think> block")
    reasoning, answer = match.group(1).strip(), match.group(2).strip()
    if not reasoning or not answer:
        raise ParseError("empty reasoning or answer around <think>...</think>")
    return {"reasoning": reasoning, "answer": answer}


_SCORE_WORD = re.compile(r"score\W{0,5}(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_REASON = re.compile(r"(?:reason|rationale)\W{0,3}(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def judge_score(text: str, low: float, high: float) -> tuple[float, str]:
    """A grader's score and rationale: JSON `{"score", "rationale"}` when given, else a
    `Score: N` line (with a `Reason:` line as rationale), else the first number in the scale
    (small teachers rarely keep to a format)."""
    try:
        value = json_value(text)
    except ParseError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("score"), (int, float, str)):
        try:
            score = float(value["score"])
        except ValueError:
            score = None
        if score is not None and low <= score <= high:
            return score, str(value.get("rationale", "")).strip()
    reason = _REASON.search(text)
    rationale = reason.group(1).strip() if reason else text.strip()
    for finder in (_SCORE_WORD.findall, _NUMBER.findall):
        for candidate in finder(text):
            if low <= float(candidate) <= high:
                return float(candidate), rationale
    raise ParseError(f"no score between {low:g} and {high:g} in the answer")
