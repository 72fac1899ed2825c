"""`dedup`: near-duplicate removal across a whole run. The first sample to claim a fingerprint
keeps it; later ones are rejected as near-duplicates of that record. The fingerprints are the
validator's run-wide shared state, split into shards by LSH bucket (in-process in a test, Ray
actors spread over a run's nodes), loaded with the committed records when a run resumes.

A sample's buckets may live on several shards, so a claim is two-phase: it reserves its
buckets on each shard it touches (a shard answers with a kept near-duplicate, or "busy" when
a near-duplicate holds a reservation there), then keeps them all. Two near-duplicates can
therefore never both be kept: whichever reserves second on a shared bucket's shard hears of
the other. Claimers that collide both let go and try again after a random pause; a
reservation whose claimer died lapses after LEASE_S."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import time
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from synthgen.config.kinds import ValidatorSpec, field_list_refs
from synthgen.engine.references import lsh_threshold
from synthgen.engine.shingles import SHINGLE_WORDS, ngram_hashes, signatures, word_hashes
from synthgen.engine.validators.base import Check, Inputs, Services, ValidatorKind, field_texts

NUM_PERM = 128
LEASE_S = 30.0
_EMPTY = np.uint64(2**64 - 1)  # the signature of a text without words: nothing to compare


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


@functools.cache
def _bands(jaccard: float) -> tuple[int, int]:
    """Bands and rows per band: datasketch's choice for this threshold."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=lsh_threshold(jaccard), num_perm=NUM_PERM)
    return lsh.b, lsh.r


def bucket_keys(digest: str, signature: np.ndarray, jaccard: float) -> list[bytes]:
    """The buckets a sample falls in: its exact digest, and one per LSH band of its signature."""
    keys = [b"=" + digest.encode()]
    if signature[0] != _EMPTY:
        bands, rows = _bands(jaccard)
        keys += [b"%d:" % band + signature[band * rows:(band + 1) * rows].tobytes() for band in range(bands)]
    return keys


def shard_of(key: bytes, shards: int) -> int:
    return zlib.crc32(key) % shards


class FingerprintShard:
    """The buckets one shard owns, with the signatures of the samples in them: kept ones, and
    reserved ones whose claim is under way."""

    def __init__(self, jaccard: float, shard: int = 0, shards: int = 1, lease_s: float = LEASE_S):
        self.jaccard, self.shard, self.shards, self.lease_s = jaccard, shard, shards, lease_s
        self.buckets: dict[bytes, list[str]] = {}
        self.signatures: dict[str, np.ndarray] = {}
        self.reserved: dict[str, tuple[float, list[bytes]]] = {}  # record id: (lapses at, its keys)

    def reserve(self, record_id: str, keys: list[bytes], signature: np.ndarray, keep: bool = False) -> tuple[str, str | None]:
        """("duplicate", the kept record it repeats), ("busy", a reserved near-duplicate), or
        ("reserved", None), kept at once with `keep` (a claim on this shard alone). A record
        already kept here (a batch run again) is still the first."""
        self.release(record_id)
        if record_id in self.signatures:
            return "reserved", None
        busy = None
        best, best_score = None, -1.0
        for other in {other for key in keys for other in self.buckets.get(key, ())}:
            if self._lapsed(other):
                continue
            score = float((self.signatures[other] == signature).mean())
            if score < self.jaccard:
                continue
            if other in self.reserved:
                busy = other
            elif score > best_score:
                best, best_score = other, score
        if best is not None:
            return "duplicate", best
        if busy is not None:
            return "busy", busy
        self._add(record_id, keys, signature)
        if not keep:
            self.reserved[record_id] = (time.monotonic() + self.lease_s, keys)
        return "reserved", None

    def keep(self, record_id: str) -> bool:
        """Make a reservation final; False when it lapsed meanwhile."""
        if self._lapsed(record_id) or record_id not in self.signatures:
            return False
        self.reserved.pop(record_id, None)
        return True

    def release(self, record_id: str) -> None:
        if record_id in self.reserved:
            _, keys = self.reserved.pop(record_id)
            for key in keys:
                self.buckets[key].remove(record_id)
                if not self.buckets[key]:
                    del self.buckets[key]
            del self.signatures[record_id]

    def keep_at_once(self, record_id: str, digest: str, signature: np.ndarray) -> str | None:
        """A claim on a shard that owns every bucket, by its only caller (seed screening)."""
        _, first = self.reserve(record_id, bucket_keys(digest, signature, self.jaccard), signature, keep=True)
        return first

    def _add(self, record_id: str, keys: list[bytes], signature: np.ndarray) -> None:
        self.signatures[record_id] = signature
        for key in keys:
            self.buckets.setdefault(key, []).append(record_id)

    def _lapsed(self, record_id: str) -> bool:
        held = self.reserved.get(record_id)
        if held is None or held[0] > time.monotonic():
            return False
        self.release(record_id)
        return True


def first_claims(registry: FingerprintShard, keys: list[str], texts: list[str]) -> list[str | None]:
    """For each text in order, the key of an earlier near-duplicate, or None (it is now a first).
    Fingerprints are computed for the whole list at once."""
    return [registry.keep_at_once(key, digest, signature) for key, (digest, signature) in zip(keys, fingerprints(texts))]


class RunFingerprints(FingerprintShard):
    """One shard of the run-wide state of a dedup validator."""

    def __init__(self, spec: DedupSpec, shard: int = 0, shards: int = 1):
        super().__init__(spec.jaccard, shard, shards)
        self.spec = spec

    def absorb(self, record_ids: list[str], fields: list[dict[str, Any]]) -> None:
        """Committed records hold their buckets (those of this shard) before any new sample."""
        texts = ["\n".join(field_texts(row, self.spec.fields).values()) for row in fields]
        for record_id, (digest, signature) in zip(record_ids, fingerprints(texts)):
            keys = [key for key in bucket_keys(digest, signature, self.jaccard) if shard_of(key, self.shards) == self.shard]
            if keys and record_id not in self.signatures:
                self._add(record_id, keys, signature)


async def claim(shards: Sequence[Any], record_id: str, digest: str, signature: np.ndarray, jaccard: float) -> str | None:
    """The kept record this one near-duplicates, or None: it is kept now, on every shard that
    owns one of its buckets. `shards` are called as `await shard.method(...)`."""
    keys: dict[int, list[bytes]] = {}
    for key in bucket_keys(digest, signature, jaccard):
        keys.setdefault(shard_of(key, len(shards)), []).append(key)
    alone = len(keys) == 1  # one shard owns every bucket: reserving is keeping
    while True:
        started = time.monotonic()
        held: list[int] = []
        verdict, other = "reserved", None
        for shard in sorted(keys):
            verdict, other = await _reserve(shards[shard], record_id, keys[shard], signature, started, alone)
            if verdict != "reserved":
                break
            held.append(shard)
        if alone and verdict == "reserved":
            return None
        # A reservation kept late could have lapsed on one shard and been taken there by a
        # near-duplicate: past half the lease, start again rather than keep.
        if (verdict == "reserved" and time.monotonic() - started < LEASE_S / 2
                and all(await asyncio.gather(*(shards[shard].keep(record_id) for shard in held)))):
            return None
        await asyncio.gather(*(shards[shard].release(record_id) for shard in held))
        if verdict == "duplicate":
            return other


async def _reserve(shard: Any, record_id: str, keys: list[bytes], signature: np.ndarray, started: float,
                   keep: bool) -> tuple[str, str | None]:
    """Reserve on one shard, waiting while a near-duplicate's claim is under way there. Shards
    are reserved in one order by every claimer, so whoever a claimer waits for never waits for
    it; a wait past half the lease (that claimer may be dead) starts the claim again."""
    pause_s = 0.002
    while True:
        verdict, other = await shard.reserve(record_id, keys, signature, keep)
        if verdict != "busy" or time.monotonic() - started > LEASE_S / 2:
            return verdict, other
        await asyncio.sleep(random.uniform(pause_s / 2, pause_s))
        pause_s = min(2 * pause_s, 0.2)


class DedupCheck:
    def __init__(self, name: str, spec: DedupSpec, shards: Sequence[Any]):
        self.name = name
        self.spec = spec
        self.fields = tuple(spec.fields or ())
        self.shards = shards

    async def check(self, inputs: Inputs, record_id: str) -> Check:
        text = "\n".join(field_texts(inputs.fields, self.spec.fields).values())
        [(digest, signature)] = fingerprints([text])
        first = await claim(self.shards, record_id, digest, signature, self.spec.jaccard)
        if first is not None:
            return Check(False, f"near-duplicate of record {first}", f"This repeats record {first}.")
        return Check(True, "first of its kind")


def build(name: str, spec: DedupSpec, services: Services) -> DedupCheck:
    if services.shared is None:
        raise ValueError(f"validator {name}: dedup needs run-wide shared state")
    return DedupCheck(name, spec, services.shared(name))


KIND = ValidatorKind("dedup", DedupSpec, build, shared=RunFingerprints)
