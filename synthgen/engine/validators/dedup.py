"""`dedup`: near-duplicate removal across a whole run. The first sample to claim a fingerprint
keeps it; later ones are rejected as near-duplicates of that record. Where the fingerprints
live is the registry's business: in-process here, a Ray actor shared by all workers in a run."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import numpy as np

from synthgen.config import DedupValidator
from synthgen.engine.references import lsh_threshold
from synthgen.engine.shingles import ngram_hashes, signatures, word_hashes
from synthgen.engine.validators.base import Check
from synthgen.engine.validators.decontaminate import field_texts

SHINGLE_WORDS = 5
NUM_PERM = 128


class DedupRegistry(Protocol):
    async def claim(self, record_id: str, digest: str, signature: np.ndarray) -> str | None:
        """The record this one duplicates, or None (then it is registered as a first)."""


def fingerprints(texts: list[str]) -> list[tuple[str, np.ndarray]]:
    """Exact digest (of the normalised words) and MinHash signature of each text."""
    words = word_hashes(texts)
    sigs = signatures(ngram_hashes(words, SHINGLE_WORDS), NUM_PERM)
    return [(hashlib.blake2b(words.of(i).tobytes(), digest_size=12).hexdigest(), sigs[i]) for i in range(len(texts))]


class LocalRegistry:
    """Exact digests in a dict, signatures in datasketch's MinHashLSH."""

    def __init__(self, jaccard: float):
        from datasketch import MinHashLSH

        self.jaccard = jaccard
        self.digests: dict[str, str] = {}
        self.signatures: dict[str, np.ndarray] = {}
        self.lsh = MinHashLSH(threshold=lsh_threshold(jaccard), num_perm=NUM_PERM)

    def claim_now(self, record_id: str, digest: str, signature: np.ndarray) -> str | None:
        from datasketch import LeanMinHash

        first = self.digests.get(digest)
        if first is not None:
            return None if first == record_id else first
        if record_id in self.signatures:
            return None  # the same record again (a retried batch): still the first
        minhash = LeanMinHash(seed=1, hashvalues=signature, scheme="affine64")
        candidates = [c for c in self.lsh.query(minhash) if c != record_id]
        if candidates:
            scores = [float((self.signatures[c] == signature).mean()) for c in candidates]
            best = int(np.argmax(scores))
            if scores[best] >= self.jaccard:
                return candidates[best]
        self.digests[digest] = record_id
        if signature[0] != np.uint64(2**64 - 1):  # an empty text has no signature to compare
            self.signatures[record_id] = signature
            self.lsh.insert(record_id, minhash)
        return None

    async def claim(self, record_id: str, digest: str, signature: np.ndarray) -> str | None:
        return self.claim_now(record_id, digest, signature)


def first_claims(registry: LocalRegistry, keys: list[str], texts: list[str]) -> list[str | None]:
    """For each text in order, the key of an earlier near-duplicate, or None (it is now a first).
    Fingerprints are computed for the whole list at once."""
    return [registry.claim_now(key, digest, signature) for key, (digest, signature) in zip(keys, fingerprints(texts))]


class DedupCheck:
    runs_last = True  # only samples about to be accepted may claim a fingerprint

    def __init__(self, name: str, spec: DedupValidator, registry: DedupRegistry):
        self.name = name
        self.spec = spec
        self.fields = tuple(spec.fields or ())
        self.registry = registry

    async def check(self, fields: dict[str, Any], record_id: str) -> Check:
        text = "\n".join(field_texts(fields, self.spec.fields).values())
        [(digest, signature)] = fingerprints([text])
        first = await self.registry.claim(record_id, digest, signature)
        if first is not None:
            return Check(False, f"near-duplicate of record {first}", f"This repeats record {first}.")
        return Check(True, "first of its kind")
