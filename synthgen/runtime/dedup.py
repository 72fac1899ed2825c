"""Run-wide dedup: one Ray actor holds the fingerprints of every accepted sample, for all
workers on all nodes; on resume it starts from the committed shards, so a duplicate of a
record accepted before a crash is still caught."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import ray

from synthgen.config import Workflow
from synthgen.engine.validators.decontaminate import field_texts
from synthgen.engine.validators.dedup import LocalRegistry, fingerprints

log = logging.getLogger(__name__)
PRELOAD_BATCH = 2000


@ray.remote(num_cpus=0)
class DedupActor:
    def __init__(self, thresholds: dict[str, float]):
        self.registries = {name: LocalRegistry(jaccard) for name, jaccard in thresholds.items()}

    def claim(self, name: str, record_id: str, digest: str, signature: np.ndarray) -> str | None:
        return self.registries[name].claim_now(record_id, digest, signature)

    def preload(self, name: str, items: list[tuple[str, str, np.ndarray]]) -> None:
        for record_id, digest, signature in items:
            self.registries[name].claim_now(record_id, digest, signature)


class ActorRegistry:
    """A worker's handle on the run's registry for one dedup validator."""

    def __init__(self, actor, name: str):
        self.actor, self.name = actor, name

    async def claim(self, record_id: str, digest: str, signature: np.ndarray) -> str | None:
        return await self.actor.claim.remote(self.name, record_id, digest, signature)


def create_dedup(workflow: Workflow, out: Path):
    """The run's dedup actor, loaded with the committed records, or None without dedup validators."""
    specs = {name: spec for name, spec in workflow.validators.items() if spec.kind == "dedup"}
    if not specs:
        return None
    actor = DedupActor.remote({name: spec.jaccard for name, spec in specs.items()})
    files = sorted((out / "data").glob("*.parquet"))
    if not files:
        return actor
    import pyarrow.parquet as pq

    loaded = 0
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=PRELOAD_BATCH, columns=["record_id", *workflow.field_names]):
            rows = batch.to_pylist()
            for name, spec in specs.items():
                texts = ["\n".join(field_texts({f: row[f] for f in workflow.field_names}, spec.fields).values()) for row in rows]
                prints = fingerprints(texts)
                ray.get(actor.preload.remote(name, [(row["record_id"], d, s) for row, (d, s) in zip(rows, prints)]))
            loaded += len(rows)
    log.info("dedup: %d committed records loaded", loaded)
    return actor
