"""`dedup`: near-duplicate removal across a whole run. The first sample to claim a fingerprint
keeps it; later ones are rejected as near-duplicates of that record. The fingerprints are the
validator's run-wide shared state: in-process in a test, one Ray actor for all workers in a run,
loaded with the committed records when a run resumes."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from synthgen.config.kinds import ValidatorSpec, field_list_refs
from synthgen.engine.references import lsh_threshold
from synthgen.engine.shingles import SHINGLE_WORDS, ngram_hashes, signatures, word_hashes
from synthgen.engine.validators.base import Check, Inputs, Services, ValidatorKind, field_texts

NUM_PERM = 128


class DedupSpec(ValidatorSpec):
    """Reject near-duplicates across the whole run (all workers, and committed shards on resume):
    the first sample is kept, later ones say which record they repeat."""

    kind: Literal["dedup"] = "dedup"
    fields: list[str] | None = Field(None, description="fields compared (default: every field)")
    jaccard: float = Field(0.85, gt=0, le=1, description="MinHash similarity above which a sample is a near-duplicate")

    # Only samples about to be accepted may claim a fingerprint.
    runs_last: ClassVar[bool] = True

    def field_refs(self) -> dict[str, str]:
        return field_list_refs(self.fields)


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

    def claim(self, record_id: str, digest: str, signature: np.ndarray) -> str | None:
        """The record this one duplicates, or None (then it is registered as a first)."""
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


def first_claims(registry: LocalRegistry, keys: list[str], texts: list[str]) -> list[str | None]:
    """For each text in order, the key of an earlier near-duplicate, or None (it is now a first).
    Fingerprints are computed for the whole list at once."""
    return [registry.claim(key, digest, signature) for key, (digest, signature) in zip(keys, fingerprints(texts))]


class RunFingerprints(LocalRegistry):
    """The run-wide state of one dedup validator."""

    def __init__(self, spec: DedupSpec):
        super().__init__(spec.jaccard)
        self.spec = spec

    def absorb(self, record_ids: list[str], fields: list[dict[str, Any]]) -> None:
        """Committed records claim their fingerprints before any new sample."""
        first_claims(self, record_ids, ["\n".join(field_texts(row, self.spec.fields).values()) for row in fields])


class DedupCheck:
    def __init__(self, name: str, spec: DedupSpec, fingerprints_of_run):
        self.name = name
        self.spec = spec
        self.fields = tuple(spec.fields or ())
        self.run_fingerprints = fingerprints_of_run

    async def check(self, inputs: Inputs, record_id: str) -> Check:
        text = "\n".join(field_texts(inputs.fields, self.spec.fields).values())
        [(digest, signature)] = fingerprints([text])
        first = await self.run_fingerprints.claim(record_id, digest, signature)
        if first is not None:
            return Check(False, f"near-duplicate of record {first}", f"This repeats record {first}.")
        return Check(True, "first of its kind")


def build(name: str, spec: DedupSpec, services: Services) -> DedupCheck:
    if services.shared is None:
        raise ValueError(f"validator {name}: dedup needs run-wide shared state")
    return DedupCheck(name, spec, services.shared(name))


KIND = ValidatorKind("dedup", DedupSpec, build, shared=RunFingerprints)
