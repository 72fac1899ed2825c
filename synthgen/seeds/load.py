"""A workflow's seed set: read, exact duplicates dropped by content hash, near-duplicates and
benchmark leaks screened out (each dropped seed recorded with its reason), cut at the limit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from synthgen.config.errors import UserError
from synthgen.config.workflow import SeedSource
from synthgen.engine.records import Seed
from synthgen.engine.validators.decontaminate import index_for
from synthgen.engine.validators.dedup import LocalRegistry, first_claims
from synthgen.seeds.read import read_seeds

log = logging.getLogger(__name__)


@dataclass
class SeedSet:
    seeds: list[Seed]
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)


def load_seeds(source: SeedSource) -> SeedSet:
    """The seeds of a plain source. A curated source (`curate:`) is curated into a plain one
    first, by the curation pipeline (synthgen.pipelines.curate)."""
    if source.curate is not None:
        raise ValueError("a curated seed source is loaded through the curation pipeline")
    path = Path(source.path)
    if not path.exists():
        raise UserError(f"seed path not found: {path}")
    seen: set[str] = set()
    result = SeedSet(seeds=[])
    keep = _screen(source, result)
    for seed in read_seeds(path, source, result.skipped):
        if seed.seed_id in seen:
            result.duplicates += 1
            continue
        seen.add(seed.seed_id)
        if not keep(seed):
            continue
        result.seeds.append(seed)
        if source.limit is not None and len(result.seeds) >= source.limit:
            break
    for problem in result.skipped[:5]:
        log.warning("seed skipped: %s", problem)
    if len(result.skipped) > 5:
        log.warning("... and %d more seeds skipped", len(result.skipped) - 5)
    if not result.seeds:
        raise UserError(f"no seeds found in {path} (format {source.format}, {len(result.skipped)} unreadable)")
    return result


def _screen(source: SeedSource, result: SeedSet) -> Callable[[Seed], bool]:
    """The seed-side use of the validators' machinery: near-duplicate and benchmark screening,
    each dropped seed recorded with its reason."""
    registry = LocalRegistry(source.near_dedup) if source.near_dedup is not None else None
    index = index_for(source.decontaminate, "seeds.decontaminate") if source.decontaminate is not None else None

    def keep(seed: Seed) -> bool:
        if index is not None:
            [hit] = index.check([seed.text])
            if hit is not None:
                result.skipped.append(f"{seed.source}: contaminated seed ({hit.describe()})")
                return False
        if registry is not None:
            [first] = first_claims(registry, [seed.seed_id], [seed.text])
            if first is not None:
                result.skipped.append(f"{seed.source}: near-duplicate of seed {first}")
                result.duplicates += 1
                return False
        return True

    return keep
