"""Final answers: finding the one a text commits to, and deciding whether two are the same.

Forms understood: numbers (integers, decimals, fractions, mixed numbers, percentages,
thousands separators, scientific notation, `1.5 \\times 10^{3}`), LaTeX (`\\boxed{}`, `\\frac`,
`\\sqrt`, `\\cdot`, `\\pi`, `\\left(`), algebraic expressions (equivalence through sympy, decided
by exact simplification of numbers and by evaluation at fixed random points for symbols),
multiple-choice letters, comma-separated answer sets, and plain strings (normalised).

Teacher text is never evaluated as Python: expressions go through a small parser here that builds
sympy objects from a whitelist of tokens."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

MAX_EXPRESSION_CHARS = 300
RELATIVE_TOLERANCE = 1e-6
CHOICE_LETTERS = "ABCDEFGH"
FUNCTIONS = ("sqrt", "sin", "cos", "tan", "log", "ln", "exp", "abs")
CONSTANTS = ("pi", "e")

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MARKED = re.compile(r"(?:final answer|answer)\s*(?:is|:|=)\s*:?\s*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"^\s*####\s*(.+)$", re.MULTILINE)
_THINK_END = "</think>"


@dataclass(frozen=True)
class Extracted:
    answer: str | None
    problem: str = ""  # why there is no answer


def final_answer(text: str) -> Extracted:
    """The answer a text commits to: after `</think>` if there is one; a `\\boxed{}` (all boxed
    answers must agree), an `Answer: ...` line, a `#### ...` line, or the whole text if short."""
    if _THINK_END in text:
        text = text.rsplit(_THINK_END, 1)[1]
    text = text.strip()
    if not text:
        return Extracted(None, "the answer is empty")
    boxed = _boxed(text)
    if boxed:
        distinct = {_squash(item) for item in boxed}
        if len(distinct) > 1:
            return Extracted(None, f"several different boxed answers: {', '.join(boxed[:4])}")
        return Extracted(boxed[-1].strip())
    for pattern in (_HASHES, _MARKED):
        found = pattern.findall(text)
        if found:
            return Extracted(_trim(found[-1]))
    if len(text) <= 60 and "\n" not in text:
        return Extracted(_trim(text))
    return Extracted(None, "no final answer found: put it in \\boxed{} or on a line 'Answer: ...'")


def _boxed(text: str) -> list[str]:
    found = []
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for position in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            if depth == 0:
                found.append(text[start:position])
                break
    return found


def _trim(answer: str) -> str:
    answer = answer.strip().strip("*").strip().rstrip(".").strip().strip("$").strip("*").strip()
    return answer


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# -- equivalence -------------------------------------------------------------------------------
def same_answer(answer: str, expected: str, mode: str = "auto") -> bool:
    """Whether `answer` (an extracted final answer) is `expected`, in the given mode:
    number, expression, choice, string, or auto (chosen from the expected answer's form)."""
    if mode in ("auto", "number", "expression") and (_is_list(expected) or _is_list(answer)):
        return _same_lists(answer, expected) or _normal_string(answer) == _normal_string(expected)
    mode = _mode(expected) if mode == "auto" else mode
    if mode == "choice":
        return _choice(answer) == _choice(expected) is not None
    if mode == "string":
        return _normal_string(answer) == _normal_string(expected)
    if mode == "number":
        return _same_number(answer, expected)
    return _same_expression(answer, expected) or _normal_string(answer) == _normal_string(expected)


def _mode(expected: str) -> str:
    if _choice(expected) is not None and len(expected.strip().strip("()").rstrip(").")) == 1:
        return "choice"
    if _number(expected) is not None:
        return "number"
    if _expression(expected) is not None:
        return "expression"
    return "string"


def _choice(text: str) -> str | None:
    text = text.strip().upper()
    found = re.fullmatch(r"\(?([A-H])\)?[.)]?(?:\s+.*)?", text, re.DOTALL) or re.search(r"\(([A-H])\)", text)
    return found.group(1) if found else None


def _normal_string(text: str) -> str:
    text = latex_to_plain(text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    words = [word for word in text.split() if word not in ("a", "an", "the")]
    return " ".join(words)


def _is_list(text: str) -> bool:
    return "," in _without_thousands(latex_to_plain(text)) and len(text) <= MAX_EXPRESSION_CHARS


def _without_thousands(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)


def _same_lists(answer: str, expected: str) -> bool:
    """`2, 3` is `3, 2` and `x = 2 or x = 3`: answer sets compare as multisets."""
    def items(text: str) -> list[str]:
        plain = _without_thousands(latex_to_plain(text)).strip("{}[]() ")
        return [item for item in re.split(r",|\bor\b|\band\b", plain) if item.strip()]

    mine, theirs = items(answer), items(expected)
    if len(mine) != len(theirs):
        return False
    unmatched = list(theirs)
    for item in mine:
        match = next((other for other in unmatched if _same_number(item, other) or _same_expression(item, other)), None)
        if match is None:
            return False
        unmatched.remove(match)
    return True


def _same_number(answer: str, expected: str) -> bool:
    mine, theirs = _number(answer), _number(expected)
    if mine is None or theirs is None:
        return False
    (a, a_percent), (b, b_percent) = mine, theirs
    options = [(a, b)]
    if a_percent != b_percent:  # "75%" is 0.75, and an answer of 75 to "75%" is right too
        options += [(a / 100, b) if a_percent else (a, b / 100)]
    return any(_close(x, y) for x, y in options)


def _close(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-9)


def _number(text: str) -> tuple[float, bool] | None:
    """The number `text` is, and whether it was a percentage."""
    plain = _without_thousands(latex_to_plain(_strip_assignment(text)))
    plain = re.sub(r"\s*(?:units?|dollars?|cm|m|kg|g|s|degrees?)\s*$", "", plain.strip(), flags=re.IGNORECASE)
    plain = plain.lstrip("$").strip()
    percent = plain.endswith("%")
    plain = plain.rstrip("%").strip()
    mixed = re.fullmatch(r"(-?)(\d+)\s+(\d+)\s*/\s*(\d+)", plain)
    if mixed:
        sign = -1 if mixed.group(1) else 1
        value = sign * (int(mixed.group(2)) + int(mixed.group(3)) / int(mixed.group(4)))
        return value, percent
    expression = _expression(plain)
    if expression is None or expression.free_symbols:
        return None
    try:
        value = complex(expression.evalf())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if abs(value.imag) > 1e-12 or not math.isfinite(value.real):
        return None
    return value.real, percent


def _strip_assignment(text: str) -> str:
    """`x = 5` answers 5: drop a single-variable left-hand side."""
    found = re.fullmatch(r"\s*[A-Za-z]\s*=\s*(.+)", text, re.DOTALL)
    return found.group(1) if found else text


def _same_expression(answer: str, expected: str) -> bool:
    mine, theirs = _expression(_strip_assignment(answer)), _expression(_strip_assignment(expected))
    if mine is None or theirs is None:
        return False
    if not mine.free_symbols | theirs.free_symbols:
        try:
            difference = complex((mine - theirs).evalf())
            scale = max(1.0, abs(complex(theirs.evalf())))
        except (TypeError, ValueError, ZeroDivisionError):
            return False
        return abs(difference) <= RELATIVE_TOLERANCE * scale
    return _agree_at_points(mine, theirs)


def _agree_at_points(first, second) -> bool:
    """Equal as functions: the same values at fixed random points (points where either side is
    undefined are skipped; at least three must count)."""
    symbols = sorted(first.free_symbols | second.free_symbols, key=str)
    generator = random.Random(7)
    agreed = 0
    for _ in range(12):
        point = {symbol: generator.uniform(0.5, 3.5) for symbol in symbols}
        try:
            a, b = complex(first.evalf(subs=point)), complex(second.evalf(subs=point))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if not all(math.isfinite(part) for part in (a.real, a.imag, b.real, b.imag)):
            continue
        if abs(a - b) > RELATIVE_TOLERANCE * max(1.0, abs(b)):
            return False
        agreed += 1
        if agreed == 6:
            break
    return agreed >= 3


# -- LaTeX and expressions ---------------------------------------------------------------------
_LATEX_COMMANDS = [
    (r"\\left\s*", ""), (r"\\right\s*", ""), (r"\\[,;!: ]", " "), (r"\\(?:cdot|times)", "*"), (r"\\div", "/"),
    (r"\\pi", "pi"), (r"\\%", "%"), (r"\^\s*\{?\\circ\}?", ""), (r"\\degree", ""), (r"\\infty", "oo"),
    (r"\\(?:mathrm|text|textbf|mathbf|operatorname)\s*\{([^{}]*)\}", r"\1"), (r"\\ln", "ln"), (r"\\log", "log"),
    (r"\\(?:sin|cos|tan|exp)", lambda m: m.group(0)[1:]), (r"\\le", "<="), (r"\\ge", ">="),
]


def latex_to_plain(text: str) -> str:
    """LaTeX math as plain infix: `\\frac{a}{b}` is `((a)/(b))`, `x^{2}` is `x^(2)`."""
    text = text.strip().strip("$").strip()
    boxed = _boxed(text)
    if boxed:
        text = boxed[-1]
    for _ in range(8):  # nested fractions and roots, innermost first
        before = text
        text = re.sub(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"((\1)/(\2))", text)
        text = re.sub(r"\\[dt]?frac\s*(\d)\s*(\d)", r"((\1)/(\2))", text)
        text = re.sub(r"\\sqrt\s*\[([^\]]*)\]\s*\{([^{}]*)\}", r"((\2)^(1/(\1)))", text)
        text = re.sub(r"\\sqrt\s*\{([^{}]*)\}", r"sqrt(\1)", text)
        text = re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])", r"sqrt(\1)", text)
        if text == before:
            break
    for pattern, replacement in _LATEX_COMMANDS:
        text = re.sub(pattern, replacement, text)
    return text.replace("{", "(").replace("}", ")").strip()


_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z]+)|(\*\*|[-+*/^()]))")


def _expression(text: str):
    """A sympy expression for `text`, or None when it is not one (parsed here: never eval'd)."""
    plain = latex_to_plain(text)
    if not plain or len(plain) > MAX_EXPRESSION_CHARS:
        return None
    tokens, position = [], 0
    while position < len(plain):
        match = _TOKEN.match(plain, position)
        if not match or match.end() == position:
            if plain[position:].strip() == "":
                break
            return None
        number, word, operator = match.groups()
        if word is not None:
            tokens.extend(_words(word))
            if tokens and tokens[-1] is None:
                return None
        else:
            tokens.append(("num", number) if number is not None else ("op", "^" if operator == "**" else operator))
        position = match.end()
    try:
        parser = _Parser(tokens)
        value = parser.expression()
        return value if parser.done() else None
    except (_NotAnExpression, ZeroDivisionError, ValueError, TypeError, RecursionError):
        return None


def _words(word: str) -> list:
    """`sqrt`, `pi`, `x`; `xy` is x times y; anything else is not mathematics."""
    lowered = word.lower()
    if lowered in FUNCTIONS:
        return [("fn", lowered)]
    if word in CONSTANTS:
        return [("const", word)]
    if word == "oo":
        return [("const", "oo")]
    if len(word) <= 3:
        return [("sym", letter) for letter in word]
    return [None]


class _NotAnExpression(Exception):
    pass


class _Parser:
    """expression := term (('+'|'-') term)*; term := unary (('*'|'/'|implicit) unary)*;
    unary := ('-'|'+') unary | power; power := atom ('^' unary)?"""

    def __init__(self, tokens: list):
        import sympy

        self.sympy = sympy
        self.tokens = tokens
        self.position = 0
        self.atoms = 0

    def done(self) -> bool:
        return self.position == len(self.tokens)

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        self.position += 1
        return token

    def expression(self):
        value = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            _, operator = self.take()
            right = self.term()
            value = value + right if operator == "+" else value - right
        return value

    def term(self):
        value = self.unary()
        while True:
            kind, text = self.peek()
            if (kind, text) in (("op", "*"), ("op", "/")):
                self.take()
                right = self.unary()
                value = value * right if text == "*" else value / right
            elif kind in ("num", "sym", "const", "fn") or (kind, text) == ("op", "("):
                value = value * self.unary()  # implicit: 2x, 2(x+1), x y
            else:
                return value

    def unary(self):
        if self.peek() in (("op", "-"), ("op", "+")):
            _, operator = self.take()
            value = self.unary()
            return -value if operator == "-" else value
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() == ("op", "^"):
            self.take()
            exponent = self.unary()
            if not exponent.free_symbols and abs(complex(exponent.evalf())) > 1000:
                raise _NotAnExpression("exponent too large")
            return base ** exponent
        return base

    def atom(self):
        self.atoms += 1
        if self.atoms > 200:
            raise _NotAnExpression("too long")
        sympy = self.sympy
        kind, text = self.take()
        if kind == "num":
            return sympy.Rational(text) if "e" not in text.lower() else sympy.Float(text)
        if kind == "sym":
            return sympy.Symbol(text)
        if kind == "const":
            return {"pi": sympy.pi, "e": sympy.E, "oo": sympy.oo}[text]
        if kind == "fn":
            argument = self.atom()
            function = {"sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "log": sympy.log,
                        "ln": sympy.log, "exp": sympy.exp, "abs": sympy.Abs}[text]
            return function(argument)
        if (kind, text) == ("op", "("):
            value = self.expression()
            if self.take() != ("op", ")"):
                raise _NotAnExpression("unbalanced parentheses")
            return value
        raise _NotAnExpression(f"unexpected {text!r}")
