"""Seed readers: JSONL, Parquet, folders of Python (one seed per top-level def/class, with the
imports and helpers it uses) and of Markdown/text/HTML (section and paragraph chunks near a
target size). Unreadable rows are reported through `skip`, never silently lost."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from synthgen.config.errors import UserError
from synthgen.config.workflow import SeedSource
from synthgen.engine.records import Seed, SeedKind

_TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".html", ".htm"}
_HEADING = re.compile(r"^#{1,6}\s")
Skip = Callable[[str], None]  # takes the reason an unreadable seed was passed over


def seed_files(path: Path) -> list[Path]:
    """The files of a seed source, in a stable order; a lone file must be in a known format."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def read_seeds(path: Path, source: SeedSource, skip: Skip) -> Iterator[Seed]:
    """Every candidate seed under `path`, unfiltered and not deduplicated."""
    return read_files(seed_files(path), source, skip, lone=not path.is_dir())


def read_files(files: Iterable[Path], source: SeedSource, skip: Skip, lone: bool = False) -> Iterator[Seed]:
    """The candidate seeds of `files`; files of no seed format are passed over, except a `lone` one."""
    for file in files:
        fmt = source.format if source.format != "auto" else _format_of(file)
        if fmt == "jsonl":
            yield from _jsonl(file, source, skip)
        elif fmt == "parquet":
            yield from _parquet(file, source, skip)
        elif fmt == "python":
            yield from _python(file, source, skip)
        elif fmt == "text":
            yield from _text(file, source)
        elif lone:
            raise UserError(f"{file}: unknown seed format; set seeds.format to one of jsonl, parquet, python, text")


def estimate_rows(files: Iterable[Path], source: SeedSource) -> int:
    """About how many seeds `files` hold, cheaply (lines of JSONL, Parquet's row counts,
    top-level definitions of Python, text size over the chunk size): the run's progress total
    and pool sizing, before the stream has counted them."""
    import pyarrow.parquet as pq

    total = 0
    for file in files:
        fmt = source.format if source.format != "auto" else _format_of(file)
        if fmt == "jsonl":
            total += _count_lines(file, b"")
        elif fmt == "parquet":
            try:
                total += pq.ParquetFile(file).metadata.num_rows
            except Exception:  # a damaged file is reported by the reader, with its name
                continue
        elif fmt == "python":
            total += _count_lines(file, b"def ", b"class ", b"async def ")
        elif fmt == "text":
            total += max(1, file.stat().st_size // source.chunk_chars)
    return total


def _count_lines(file: Path, *starts: bytes) -> int:
    with file.open("rb") as handle:
        return sum(1 for line in handle if line.startswith(starts) and line.strip())


def _format_of(file: Path) -> str | None:
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".py":
        return "python"
    if suffix in _TEXT_SUFFIXES:
        return "text"
    return None


def _row_seeds(row: dict, source: SeedSource, where: str, skip: Skip) -> Iterator[Seed]:
    """A row's seed; a code row that holds a whole file gives one seed per definition in it."""
    seed = _row_seed(row, source, where, skip)
    if seed is None:
        return
    if seed.kind == "code" and seed.text.count("\ndef ") + seed.text.count("\nclass ") + seed.text.startswith(("def ", "class ")) > 1:
        yield from python_definitions(seed.text, where, source, skip)
    else:
        yield seed


def html_text(markup: str) -> str:
    """The readable text of an HTML page: scripts, styles and navigation dropped, blocks kept as paragraphs."""
    from html.parser import HTMLParser

    class Reader(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts: list[str] = []
            self.hidden = 0

        def handle_starttag(self, tag, attrs):
            if tag in ("script", "style", "nav", "header", "footer", "noscript"):
                self.hidden += 1
            elif tag in ("p", "div", "br", "li", "section", "article", "h1", "h2", "h3", "h4", "tr"):
                self.parts.append("\n\n")
            if tag in ("h1", "h2", "h3", "h4"):
                self.parts.append("#" * int(tag[1]) + " ")

        def handle_endtag(self, tag):
            if tag in ("script", "style", "nav", "header", "footer", "noscript") and self.hidden:
                self.hidden -= 1

        def handle_data(self, data):
            if not self.hidden:
                self.parts.append(data)

    reader = Reader()
    reader.feed(markup)
    paragraphs = [" ".join(p.split()) for p in "".join(reader.parts).split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _row_seed(row: dict, source: SeedSource, where: str, skip: Skip) -> Seed | None:
    kind: SeedKind
    if source.kind == "qa" or (source.kind is None and source.question_field in row and source.answer_field in row):
        question, answer = row.get(source.question_field), row.get(source.answer_field)
        if not isinstance(question, str) or not isinstance(answer, str) or not question.strip():
            skip(f"{where}: needs string fields '{source.question_field}' and '{source.answer_field}'")
            return None
        kind, text = "qa", f"Question: {question.strip()}\n\nAnswer: {answer.strip()}"
        meta = {"question": question.strip(), "answer": answer.strip()}
    else:
        text = row.get(source.text_field)
        if not isinstance(text, str) or len(text.strip()) < source.min_chars:
            skip(f"{where}: no text in field '{source.text_field}' (or shorter than {source.min_chars} chars)")
            return None
        kind, text, meta = source.kind or str(row.get("kind") or "text"), text.strip(), {}
    for name in source.meta_fields:
        if row.get(name) is not None:
            meta[name] = str(row[name])
    if source.id_field and row.get(source.id_field) is not None:
        meta["source_id"] = str(row[source.id_field])
    return Seed.create(kind, text, where, meta)


def _jsonl(file: Path, source: SeedSource, skip: Skip) -> Iterator[Seed]:
    with file.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                skip(f"{where}: invalid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                skip(f"{where}: not a JSON object")
                continue
            yield from _row_seeds(row, source, where, skip)


def _parquet(file: Path, source: SeedSource, skip: Skip) -> Iterator[Seed]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"{file}: not a readable Parquet file ({exc})") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            number += 1
            yield from _row_seeds(row, source, f"{file}#row{number}", skip)


def _python(file: Path, source: SeedSource, skip: Skip) -> Iterator[Seed]:
    yield from python_definitions(file.read_text(encoding="utf-8", errors="replace"), str(file), source, skip)


def python_definitions(text: str, origin: str, source: SeedSource, skip: Skip, first_line: int = 1) -> Iterator[Seed]:
    """One seed per top-level def/class of a Python file's text, with what it uses."""
    try:
        tree = _parse_module(text)
    except SyntaxError as exc:
        skip(f"{origin}:{(exc.lineno or 1) + first_line - 1}: Python syntax error, file skipped")
        return
    lines = text.splitlines()
    definitions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    imports = {
        (alias.asname or alias.name).split(".")[0]: ast.get_source_segment(text, n)
        for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) for alias in n.names
    }
    for node in definitions.values():
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        code = "\n".join(lines[start - 1 : node.end_lineno]).strip()
        code = _self_contained(node, code, definitions, imports, lines)
        if len(code) < source.min_chars:
            continue
        lines_range = f"{start + first_line - 1}-{node.end_lineno + first_line - 1}"
        meta = {"name": node.name, "lines": lines_range}
        docstring = ast.get_docstring(node)
        if docstring:
            meta["docstring"] = docstring
        yield Seed.create(source.kind or "code", code, f"{origin}:{start + first_line - 1}", meta)


def _self_contained(node, code: str, definitions: dict, imports: dict[str, str], lines: list[str]) -> str:
    """The definition with the imports and sibling definitions it uses, so the seed runs alone."""
    needed, frontier = [], [node]
    while frontier:
        current = frontier.pop()
        for name in sorted({n.id for n in ast.walk(current) if isinstance(n, ast.Name)}):
            helper = definitions.get(name)
            if helper is not None and helper is not node and helper not in needed:
                needed.append(helper)
                frontier.append(helper)
    used = {n.id for part in [node, *needed] for n in ast.walk(part) if isinstance(n, ast.Name)}
    header = list(dict.fromkeys(imports[name] for name in sorted(used) if name in imports))
    helpers = ["\n".join(lines[h.lineno - 1 : h.end_lineno]) for h in sorted(needed, key=lambda h: h.lineno)]
    return "\n\n".join(filter(None, ["\n".join(header), *helpers, code]))


def _parse_module(text: str) -> ast.Module:
    # CPython 3.11 keeps ast.parse's recursion counter per process, not per thread
    # (gh-106905): a parse racing one in another thread (Ray's, a library's) can fail with a
    # spurious SystemError. The parse itself is pure, so trying again is correct.
    for _ in range(2):
        try:
            return ast.parse(text)
        except SystemError:
            continue
    return ast.parse(text)


def _text(file: Path, source: SeedSource) -> Iterator[Seed]:
    text = file.read_text(encoding="utf-8", errors="replace")
    if file.suffix.lower() in (".html", ".htm"):
        text = html_text(text)
    for start_line, chunk, title in _chunks(text, source.chunk_chars):
        if len(chunk) >= source.min_chars:
            meta = {"title": title} if title else {}
            yield Seed.create(source.kind or "text", chunk, f"{file}:{start_line}", meta)


def _chunks(text: str, target: int) -> Iterator[tuple[int, str, str]]:
    """Sections (split at headings) cut into runs of whole paragraphs of about `target` chars.
    Each chunk keeps its section heading so it reads on its own."""
    paragraphs: list[tuple[int, str]] = []
    current: list[str] = []
    start = 1
    for number, line in enumerate(text.splitlines() + [""], 1):
        if not line.strip() or _HEADING.match(line):
            if current:
                paragraphs.append((start, "\n".join(current).strip()))
                current = []
            if _HEADING.match(line):
                paragraphs.append((number, line.strip()))
            continue
        if not current:
            start = number
        current.append(line)
    title, body, body_start = "", [], 1
    for number, paragraph in paragraphs:
        if _HEADING.match(paragraph):
            if body:
                yield body_start, _with_title(title, body), title
            title, body = paragraph.lstrip("#").strip(), []
            continue
        if body and sum(len(p) for p in body) + len(paragraph) > target:
            yield body_start, _with_title(title, body), title
            body = []
        if not body:
            body_start = number
        body.append(paragraph)
    if body:
        yield body_start, _with_title(title, body), title


def _with_title(title: str, body: list[str]) -> str:
    return "\n\n".join([f"## {title}", *body] if title else body)
