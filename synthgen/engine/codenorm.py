"""A canonical form of Python code for contamination checks (phi-1's lesson: disguised copies
slip past word n-grams). Comments and docstrings go, formatting goes (one token per word),
string and number literals get one spelling, and every identifier that is not a keyword, builtin
or attribute becomes `v0`, `v1`, ... in order of first appearance, numbered afresh in every
top-level definition so that a copied function keeps its form inside a longer file.

So a renamed, reformatted, re-documented HumanEval solution has the same canonical form as
the original, and word n-grams over that form find it."""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import tokenize

_KEEP = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"self", "cls"}
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
         tokenize.ENDMARKER}
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_CODE_WORDS = ("def ", "class ", "import ", "return")
_CODE_HINT = re.compile(r"^\s*(def|class|import|from|return|for|while|if)\b", re.MULTILINE)


def code_parts(text: str) -> list[str]:
    """The Python code inside a field: its fenced blocks, else the whole field if it parses."""
    blocks = [block for block in _FENCE.findall(text) if block.strip()]
    if blocks:
        return blocks
    # Most fields are prose: a substring test spares them the regex and the parse.
    if any(word in text for word in _CODE_WORDS) and _CODE_HINT.search(text):
        try:
            ast.parse(text)
            return [text]
        except (SyntaxError, ValueError):
            return []
    return []


def normalize(source: str) -> str:
    """The canonical token sequence of `source`, or "" when it does not tokenize.

    Code that parses goes through the AST first (docstrings and type annotations dropped,
    `ast.unparse` fixes parentheses, quotes and number spellings); code cut mid-way is read
    token by token as far as it goes."""
    try:
        source = ast.unparse(_Plain().visit(ast.parse(source)))
    except (SyntaxError, ValueError, RecursionError):
        pass
    docstrings = _docstring_starts(source)
    names: dict[str, str] = {}
    out: list[str] = []
    previous = ""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            kind, text = token.type, token.string
            if kind in _SKIP:
                continue
            if kind == tokenize.NAME:
                if token.start[1] == 0 and text in ("def", "class", "async"):
                    names.clear()  # numbering restarts per top-level definition
                if text not in _KEEP and previous != ".":
                    text = names.setdefault(text, f"v{len(names)}")
            elif kind == tokenize.STRING:
                if token.start in docstrings:
                    continue
                text = _canonical_literal(text)
            elif kind == tokenize.NUMBER:
                text = _canonical_literal(text)  # 1. and 1.0, 0x10 and 16
            out.append(text)
            previous = token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # keep what tokenized: answers get cut mid-code
    return " ".join(out)


class _Plain(ast.NodeTransformer):
    """Drops what a disguise changes without changing behaviour: docstrings, annotations."""

    def _body(self, node):
        self.generic_visit(node)
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_ClassDef = _body

    def visit_FunctionDef(self, node):
        node.returns = None
        for argument in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]:
            if argument is not None:
                argument.annotation = None
        return self._body(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node):
        if node.value is None:
            return None  # a bare declaration does nothing at run time
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def _docstring_starts(source: str) -> set[tuple[int, int]]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    starts = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                starts.add((first.lineno, first.col_offset))
    return starts


def _canonical_literal(literal: str) -> str:
    try:
        return repr(ast.literal_eval(literal))
    except (ValueError, SyntaxError):
        return literal
