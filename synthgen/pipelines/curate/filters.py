"""Heuristic quality filters. Each returns None (keep) or the reason the seed is dropped; all are
plain functions of one candidate so that they run the same in-process or in a Ray task."""

from __future__ import annotations

import ast
import re

from synthgen.config.curate import CodeFilters, CurateConfig, TextFilters
from synthgen.engine.textstats import duplicate_line_fraction, duplicate_ngram_fraction

_WORD = re.compile(r"[A-Za-z]+")
_STOPWORDS = frozenset(
    "the a an and or of to in is are was were be been it this that for on with as by at from not but which "
    "can has have had will would if then so we you they he she its their our there these those".split()
)
_BRANCHES = (ast.If, ast.For, ast.While, ast.Try, ast.BoolOp, ast.IfExp, ast.comprehension, ast.With, ast.Match)


def check(candidate: dict, config: CurateConfig) -> str | None:
    if candidate["kind"] == "code":
        return code_reason(candidate, config.code)
    return text_reason(candidate["text"], config.text, min_chars=config.text.qa_min_chars if candidate["kind"] == "qa" else None)


def text_reason(text: str, rules: TextFilters, min_chars: int | None = None) -> str | None:
    minimum = rules.min_chars if min_chars is None else min_chars
    if len(text) < minimum:
        return f"text: shorter than {minimum} chars"
    if len(text) > rules.max_chars:
        return f"text: longer than {rules.max_chars} chars"
    visible = [c for c in text if not c.isspace()]
    if visible and sum(c.isalpha() for c in visible) / len(visible) < rules.min_alpha_ratio:
        return f"text: letters under {rules.min_alpha_ratio:.0%} of characters"
    words = text.split()
    symbols = sum(word.count("#") + word.count("...") + word.count("…") for word in words)
    if words and symbols / len(words) > rules.max_symbol_ratio:
        return f"text: symbol-to-word ratio over {rules.max_symbol_ratio}"
    lowered = text.lower()
    for phrase in rules.boilerplate:
        if phrase in lowered:
            return f"text: boilerplate ({phrase!r})"
    if duplicate_line_fraction(text) > rules.max_duplicate_line_fraction:
        return f"text: over {rules.max_duplicate_line_fraction:.0%} duplicate lines"
    if duplicate_ngram_fraction(words) > rules.max_duplicate_ngram_fraction:
        return f"text: over {rules.max_duplicate_ngram_fraction:.0%} of characters in repeated 5-grams"
    tokens = [w.lower() for w in _WORD.findall(text)]
    if tokens and sum(t in _STOPWORDS for t in tokens) / len(tokens) < rules.min_stopword_ratio:
        return "text: not English prose (too few function words)"
    return None


def code_reason(candidate: dict, rules: CodeFilters) -> str | None:
    text, path = candidate["text"], "/" + candidate.get("path", "")  # relative to the curated source
    for marker in rules.drop_paths:
        if marker in path:
            return f"code: vendored or generated path ({marker})"
    lowered = (candidate.get("header", "") + "\n" + text).lower()
    for marker in rules.generated_markers:
        if marker in lowered:
            return f"code: generated ({marker!r})"
    lines = text.splitlines()
    if any(len(line) > rules.max_line_chars for line in lines):
        return f"code: minified (a line over {rules.max_line_chars} chars)"
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return "code: does not parse"
    definitions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    if not definitions:
        return "code: no function or class"
    main = definitions[-1]
    name = main.name
    folders, file = path.split("/")[:-1], path.split("/")[-1]
    if name.startswith(("test", "Test")) or file.startswith("test_") or file.endswith("_test.py") or {"tests", "test"} & set(folders):
        return "code: test-only"
    if len(lines) < rules.min_lines:
        return f"code: trivial (under {rules.min_lines} lines)"
    if len(lines) > rules.max_lines:
        return f"code: over {rules.max_lines} lines"
    body = [n for n in main.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if all(isinstance(n, ast.Pass) for n in body) or (len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is None):
        return "code: trivial (empty body)"
    if rules.require_docstring and ast.get_docstring(main) is None:
        return "code: no docstring"
    branches = sum(isinstance(n, _BRANCHES) for n in ast.walk(main))
    if branches < rules.min_branches:
        return f"code: under {rules.min_branches} branches"
    if branches > rules.max_branches:
        return f"code: over {rules.max_branches} branches"
    return None


def topics(text: str, table: dict[str, list[str]]) -> list[str]:
    """Topic tags by keywords (whole words, case-insensitive), most hits first."""
    lowered = text.lower()
    hits = {topic: sum(len(re.findall(rf"\b{re.escape(k)}", lowered)) for k in keywords) for topic, keywords in table.items()}
    return [topic for topic, count in sorted(hits.items(), key=lambda item: (-item[1], item[0])) if count > 0][:3] or ["other"]
