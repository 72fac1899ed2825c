"""Vectorised text fingerprints for a batch of documents: word hashes, n-gram hashes and MinHash
signatures, all computed with numpy over the whole batch at once (no Python loop per word).

- Words are maximal runs of ASCII letters, digits, `_` and non-ASCII bytes (so UTF-8 words stay
  whole), lowercased. Each is hashed with a polynomial hash over its bytes, computed for every
  word at once from one prefix sum over the batch (arithmetic mod 2^64, numpy's wrap-around).
- N-grams of word hashes never cross a document boundary.
- Signatures use one-permutation hashing with rotation densification (Li et al. 2012,
  Shrivastava & Li 2014): one 64-bit hash per shingle picks a bin and a value, each bin keeps
  its minimum, empty bins borrow from the next non-empty one. That is one hash per shingle
  instead of one per shingle and permutation, and the fraction of equal bins still estimates
  Jaccard similarity.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_WORD_BYTE = np.zeros(256, dtype=bool)
for _range in (range(48, 58), range(65, 91), range(97, 123), range(128, 256), [95]):
    _WORD_BYTE[list(_range)] = True
_LOWER = np.arange(256, dtype=np.uint64)
_LOWER[65:91] += 32
_BASE = np.uint64(0x100000001B3)  # odd, so it has an inverse mod 2^64
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2**64))
_GRAM_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.uint64(2**64 - 1)
SHINGLE_WORDS = 5  # words per shingle of MinHash signatures (decontamination and dedup alike)


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit affects every output bit."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(30))
        values = values * np.uint64(0xBF58476D1CE4E5B9)
        values = values ^ (values >> np.uint64(27))
        values = values * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


@dataclass
class Segmented:
    """Values of many documents in one array; document d owns values[offsets[d]:offsets[d+1]]."""

    values: np.ndarray
    offsets: np.ndarray

    @functools.cached_property
    def owners(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))

    @functools.cached_property
    def gram_prefix(self) -> np.ndarray:
        """Prefix sums of values[j] * M^-j, shared by the n-grams of every n."""
        _, inverse = _power_tables(len(self.values) + 1, _GRAM_MULTIPLIER)
        with np.errstate(over="ignore"):
            return np.concatenate(([np.uint64(0)], np.cumsum(self.values * inverse[: len(self.values)])))

    def of(self, doc: int) -> np.ndarray:
        return self.values[self.offsets[doc] : self.offsets[doc + 1]]


def word_hashes(texts: list[str]) -> Segmented:
    data = np.frombuffer("\x00".join(texts).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    is_word = _WORD_BYTE[data]
    edges = np.diff(np.concatenate(([0], is_word.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    powers, inverse = _power_tables(len(data))
    with np.errstate(over="ignore"):
        prefix = np.concatenate(([np.uint64(0)], np.cumsum((_LOWER[data] + np.uint64(1)) * powers[: len(data)])))
        hashes = mix64((prefix[ends] - prefix[starts]) * inverse[starts])
    separators = np.flatnonzero(data == 0)
    boundaries = np.concatenate(([0], np.searchsorted(starts, separators), [len(starts)]))
    return Segmented(hashes, boundaries.astype(np.int64))


_TABLES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _power_tables(size: int, base: np.uint64 = _BASE) -> tuple[np.ndarray, np.ndarray]:
    """base^i and base^-i mod 2^64 for i < size, grown on demand and kept for the next batch."""
    tables = _TABLES.get(int(base))
    if tables is None or len(tables[0]) < size:
        length = max(size, 1 << 16, 2 * len(tables[0]) if tables else 0)
        inverse_base = np.uint64(pow(int(base), -1, 2**64))
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(length, base, dtype=np.uint64)) * inverse_base
            inverse = np.cumprod(np.full(length, inverse_base, dtype=np.uint64)) * base
        tables = _TABLES[int(base)] = (powers, inverse)
    return tables


def ngram_hashes(words: Segmented, n: int) -> Segmented:
    """Hashes of every run of n consecutive words inside one document."""
    values, owners = words.values, words.owners
    count = len(values) - n + 1
    docs = len(words.offsets) - 1
    if count <= 0:
        return Segmented(np.zeros(0, dtype=np.uint64), np.zeros(docs + 1, dtype=np.int64))
    # sum_k values[i+k] * M^(n-1-k) for every i at once, from one prefix sum of values[j] * M^-j.
    powers, _ = _power_tables(len(values) + 1, _GRAM_MULTIPLIER)
    prefix = words.gram_prefix
    with np.errstate(over="ignore"):
        grams = (prefix[n : n + count] - prefix[:count]) * powers[n - 1 : n - 1 + count]
    inside = owners[:count] == owners[n - 1 :]
    grams, gram_owners = mix64(grams[inside]), owners[:count][inside]
    offsets = np.concatenate(([0], np.cumsum(np.bincount(gram_owners, minlength=docs)))).astype(np.int64)
    return Segmented(grams, offsets)


def ngram_starts(words: Segmented, n: int) -> np.ndarray:
    """The index (into words.values) of the first word of each n-gram `ngram_hashes` returns."""
    count = len(words.values) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    owners = words.owners
    return np.flatnonzero(owners[:count] == owners[n - 1 :])


def signatures(shingles: Segmented, num_perm: int = 128) -> np.ndarray:
    """One MinHash signature row per document (all `_EMPTY` for a document without shingles)."""
    if num_perm & (num_perm - 1):
        raise ValueError("num_perm must be a power of two")
    bits = np.uint64(num_perm.bit_length() - 1)
    docs = len(shingles.offsets) - 1
    hashed = mix64(shingles.values ^ np.uint64(0x5851F42D4C957F2D))
    bins = (hashed >> (np.uint64(64) - bits)).astype(np.int64) if bits else np.zeros(len(hashed), np.int64)
    values = hashed & np.uint64((1 << (64 - int(bits))) - 1)
    flat = np.full(docs * num_perm, _EMPTY, dtype=np.uint64)
    np.minimum.at(flat, shingles.owners * num_perm + bins, values)
    table = flat.reshape(docs, num_perm)
    return _densify(table)


def _densify(table: np.ndarray) -> np.ndarray:
    """Each empty bin takes the value of the next non-empty bin (circularly), shifted by the distance."""
    empty = table == _EMPTY
    if not empty.any():
        return table
    docs, width = table.shape
    columns = np.arange(width)
    filled = np.where(empty, 4 * width, columns)
    doubled = np.concatenate([filled, filled + width], axis=1)
    following = np.minimum.accumulate(doubled[:, ::-1], axis=1)[:, ::-1][:, :width]
    has_any = ~empty.all(axis=1)
    source = np.where(has_any[:, None], following % width, columns)
    distance = np.where(has_any[:, None], following - columns, 0).astype(np.uint64)
    with np.errstate(over="ignore"):
        dense = table[np.arange(docs)[:, None], source] + distance * _GRAM_MULTIPLIER
    return np.where(has_any[:, None], dense, _EMPTY)


def jaccard(signature: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of one signature against each row of `others`."""
    return (others == signature).mean(axis=-1)
