"""Disguised benchmark items for tests and `bench/decontam_speed.py`: each HumanEval item
rewritten the ways contamination hides (reformatted, renamed, re-documented, type hints
removed, embedded in a longer answer, its prompt quoted in an instruction), plus clean texts that must not be flagged."""

from __future__ import annotations

import ast
import builtins
import gzip
import json
import re
import sysconfig
from pathlib import Path

from synthgen.engine.references import humaneval_path

REPO = Path(__file__).resolve().parent.parent
DISGUISES = ("verbatim", "reformatted", "compact", "renamed", "reworded_docstring", "unannotated", "embedded",
             "prompt_quoted", "all_at_once")


def humaneval_items() -> list[dict]:
    return [json.loads(line) for line in gzip.open(humaneval_path(), "rt", encoding="utf-8")]


def program(item: dict) -> str:
    return item["prompt"] + item["canonical_solution"]


class _Renamer(ast.NodeTransformer):
    """Every local name, argument and function name gets a new one (builtins and imports kept)."""

    def __init__(self, tree: ast.AST):
        imported = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        self.keep = imported | set(dir(builtins))
        self.names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        if name in self.keep:
            return name
        return self.names.setdefault(name, f"q{len(self.names)}_{name[::-1][:3]}x")

    def visit_Name(self, node):
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        node.annotation = self.visit(node.annotation) if node.annotation else None
        return node

    def visit_FunctionDef(self, node):
        node.name = self._new(node.name)
        self.generic_visit(node)
        return node


def _tree(item: dict) -> ast.Module:
    return ast.parse(program(item))


def _set_docstrings(tree: ast.Module, text: str | None) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node) is not None:
            if text is None:
                node.body = node.body[1:] or [ast.Pass()]
            else:
                node.body[0] = ast.Expr(ast.Constant(text))
    return tree


def disguise(item: dict, how: str) -> str:
    if how == "verbatim":
        return program(item)
    if how == "reformatted":
        return ast.unparse(_tree(item))
    if how == "compact":
        lines = ast.unparse(_set_docstrings(_tree(item), None)).splitlines()
        return "\n".join(" " * ((len(line) - len(line.lstrip())) // 4) + line.lstrip() for line in lines)
    if how == "renamed":
        tree = _tree(item)
        return ast.unparse(_Renamer(tree).visit(tree))
    if how == "reworded_docstring":
        return ast.unparse(_set_docstrings(_tree(item), "Computes what the caller asked for, see the examples in the tests."))
    if how == "unannotated":
        tree = _tree(item)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                node.returns = None
                for argument in node.args.args:
                    argument.annotation = None
        return ast.unparse(tree)
    if how == "embedded":
        return ("Sure! Here is a clean implementation.\n\n```python\nimport math\n\ndef helper_area(r):\n"
                "    return math.pi * r * r\n\n" + program(item) + "\n```\n\nThe helper is unused; the main function "
                "runs in linear time for typical inputs.")
    if how == "prompt_quoted":
        docstring = ast.get_docstring(next(n for n in ast.walk(_tree(item)) if isinstance(n, ast.FunctionDef)
                                           and ast.get_docstring(n))) or item["prompt"]
        return f"Write a Python function for the following problem.\n\n{docstring}\n\nExplain your approach first."
    if how == "all_at_once":
        tree = _set_docstrings(_tree(item), "Does the thing described in the task.")
        code = ast.unparse(_Renamer(tree).visit(tree))
        return f"Here you go:\n```python\n{code}\n```\nLet me know if you need tests."
    raise ValueError(how)


def planted_set() -> list[tuple[str, str, str]]:
    """(item id, disguise, text) for every HumanEval item that has a docstring to quote."""
    rows = []
    for item in humaneval_items():
        for how in DISGUISES:
            try:
                rows.append((item["task_id"], how, disguise(item, how)))
            except (StopIteration, SyntaxError):
                continue
    return rows


def clean_texts() -> list[str]:
    """The shipped seeds (code, prose, Q&A) and the project's own code: none is a benchmark item."""
    from synthgen.config.workflow import SeedSource
    from synthgen.seeds.load import load_seeds

    texts = [seed.text for folder in ("python", "text") for seed in load_seeds(SeedSource(path=str(REPO / "seeds" / folder))).seeds]
    texts += [json.loads(line)["answer"] for line in (REPO / "seeds" / "qa.jsonl").read_text().splitlines() if line.strip()]
    return texts


def short_quotes() -> list[tuple[str, str]]:
    """(item id, instruction) quoting one docstring sentence of 6 to 12 words, shorter than any
    n-gram check. Sentences are cut at '. ' here, not the way the index cuts them."""
    rows = []
    for item in humaneval_items():
        for node in ast.walk(_tree(item)):
            docstring = ast.get_docstring(node) if isinstance(node, ast.FunctionDef) else None
            for sentence in re.split(r"(?<=\.)\s+", docstring.split(">>>")[0]) if docstring else ():
                if 6 <= len(sentence.split()) <= 12:
                    rows.append((item["task_id"], f"Write a Python function that does this. {sentence.strip()} Keep it short."))
    return rows


def ordinary_code(every: int = 1) -> list[str]:
    """Top-level functions and classes of the Python standard library (every `every`-th module):
    ordinary, documented code that is no benchmark item."""
    texts = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py"))[::every]:
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError):
            continue
        texts += [segment for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                  if (segment := ast.get_source_segment(source, node))]
    return texts
