"""A workflow's seeds: read, exact duplicates dropped by content hash, near-duplicates and
benchmark leaks screened out (each dropped seed counted, the first reasons kept), cut at the
limit. `kept_seeds` is the one pass both a run's stream (runtime.seed_stream) and an in-memory
load go through; they differ only in who remembers which seed ids were seen."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from synthgen.config.errors import UserError
from synthgen.config.workflow import SeedSource
from synthgen.engine.records import Seed
from synthgen.engine.validators.decontaminate import index_for
from synthgen.engine.validators.dedup import FingerprintShard, first_claims
from synthgen.seeds.read import read_seeds

log = logging.getLogger(__name__)

NEW, DUPLICATE, COMMITTED = "new", "duplicate", "committed"
Claim = Callable[[list[str]], list[str]]  # seed ids -> NEW | DUPLICATE | COMMITTED for each
KEPT_REASONS = 50  # a broken million-row file must not fill memory with its reasons
CLAIM_CHUNK = 256


@dataclass
class SeedCounts:
    """What reading a source came to. `kept` counts the seeds that passed (committed ones too)."""

    kept: int = 0
    committed: int = 0
    duplicates: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < KEPT_REASONS:
            self.reasons.append(reason)

    def add(self, other: SeedCounts) -> None:
        self.kept += other.kept
        self.committed += other.committed
        self.duplicates += other.duplicates
        self.skipped += other.skipped
        self.reasons += other.reasons[: KEPT_REASONS - len(self.reasons)]

    def log_skipped(self) -> None:
        for problem in self.reasons[:5]:
            log.warning("seed skipped: %s", problem)
        if self.skipped > 5:
            log.warning("... and %d more seeds skipped", self.skipped - 5)


@dataclass
class SeedSet:
    seeds: list[Seed]
    counts: SeedCounts

    @property
    def duplicates(self) -> int:
        return self.counts.duplicates

    @property
    def skipped(self) -> list[str]:
        return self.counts.reasons


def load_seeds(source: SeedSource) -> SeedSet:
    """The seeds of a plain source, in memory (tests, curation, estimates). A curated source
    (`curate:`) is curated into a plain one first, by the curation pipeline (synthgen.pipelines.curate)."""
    path = source_path(source)
    seen: set[str] = set()

    def claim(ids: list[str]) -> list[str]:
        statuses = []
        for seed_id in ids:
            statuses.append(DUPLICATE if seed_id in seen else NEW)
            seen.add(seed_id)
        return statuses

    counts = SeedCounts()
    seeds = list(kept_seeds(read_seeds(path, source, counts.skip), source, counts, claim))
    counts.log_skipped()
    if not seeds:
        raise UserError(f"no seeds found in {path} (format {source.format}, {counts.skipped} unreadable)")
    return SeedSet(seeds, counts)


def source_path(source: SeedSource) -> Path:
    if source.curate is not None:
        raise ValueError("a curated seed source is loaded through the curation pipeline")
    path = Path(source.path)
    if not path.exists():
        raise UserError(f"seed path not found: {path}")
    return path


def kept_seeds(seeds: Iterable[Seed], source: SeedSource, counts: SeedCounts, claim: Claim) -> Iterator[Seed]:
    """The seeds that `claim` calls new and the screens keep, up to the source's limit. Exact
    duplicates and screened seeds are counted; committed seeds count towards the limit (a
    resumed run covers the same seeds) but are not yielded."""
    keep = screen(source, counts)
    for chunk in batched(seeds, CLAIM_CHUNK):
        for seed, status in zip(chunk, claim([seed.seed_id for seed in chunk])):
            if status == DUPLICATE:
                counts.duplicates += 1
                continue
            if not keep(seed):
                continue
            counts.kept += 1
            if status == COMMITTED:
                counts.committed += 1
            else:
                yield seed
            if source.limit is not None and counts.kept >= source.limit:
                return


def batched(items: Iterable, size: int) -> Iterator[list]:
    """`items` in lists of `size` (itertools.batched, from Python 3.12)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def screen(source: SeedSource, counts: SeedCounts) -> Callable[[Seed], bool]:
    """The seed-side use of the validators' machinery: near-duplicate and benchmark screening,
    each dropped seed counted with its reason. Near-duplicate screening keeps the first of a
    group, so it needs the seeds in one order (the stream reads such a source in one task)."""
    registry = FingerprintShard(source.near_dedup) if source.near_dedup is not None else None
    index = index_for(source.decontaminate, "seeds.decontaminate") if source.decontaminate is not None else None

    def keep(seed: Seed) -> bool:
        if index is not None:
            [hit] = index.check([seed.text])
            if hit is not None:
                counts.skip(f"{seed.source}: contaminated seed ({hit.describe()})")
                return False
        if registry is not None:
            [first] = first_claims(registry, [seed.seed_id], [seed.text])
            if first is not None:
                counts.skip(f"{seed.source}: near-duplicate of seed {first}")
                counts.duplicates += 1
                return False
        return True

    return keep
