"""Cheap, deterministic measures of a text, shared by the quality gates (validators) and seed
curation: repeated lines and n-grams (Gopher's rules), how much of a text is copied from
another, whether it ends cut off or with a code fence left open."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
# A text that stops on one of these stopped mid-sentence.
_CUT_ENDINGS = re.compile(r"[^\W\d_]$|[,;:\-–(\[{]$")


def words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def duplicate_line_fraction(text: str) -> float:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return 1 - len(set(lines)) / len(lines) if lines else 0.0


def duplicate_ngram_fraction(tokens: list[str], n: int = 5) -> float:
    """Share of characters covered by word n-grams that occur more than once (Gopher's rule)."""
    if len(tokens) < n + 1:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    repeated = {gram for gram, count in Counter(grams).items() if count > 1}
    covered = [False] * len(tokens)
    for i, gram in enumerate(grams):
        if gram in repeated:
            covered[i : i + n] = [True] * n
    total = sum(len(w) for w in tokens)
    return sum(len(w) for w, hit in zip(tokens, covered) if hit) / total if total else 0.0


def copied_fraction(text: str, source: str, n: int = 4) -> float:
    """Share of the text's word n-grams that also occur in `source` (a text shorter than n
    words counts as copied when all of it occurs there)."""
    mine, theirs = words(text), words(source)
    if not mine:
        return 0.0
    size = min(n, len(mine))
    grams = {tuple(mine[i : i + size]) for i in range(len(mine) - size + 1)}
    source_grams = {tuple(theirs[i : i + size]) for i in range(len(theirs) - size + 1)}
    return len(grams & source_grams) / len(grams)


def open_fence(text: str) -> bool:
    return len(_FENCE.findall(text)) % 2 == 1


def cut_off(text: str, sentence_words: int = 6) -> bool:
    """Ends inside a sentence: a last line of sentence length that stops on a letter, a comma, a
    colon or an opening bracket. (Short last lines, "- too short", "Teacher: Yes", titles, and
    endings on digits, closing punctuation, quotes or a code fence are fine.)"""
    lines = text.rstrip().splitlines()
    last = lines[-1].strip() if lines else ""
    return len(last.split()) >= sentence_words and bool(_CUT_ENDINGS.search(last))
