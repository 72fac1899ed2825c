"""Validators' run-wide shared state on Ray: per validator, shard actors that keep it (dedup's
fingerprints, say), called by every worker on every node. On resume the shards absorb the
committed records first, so what was accepted before a crash still counts."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow.parquet as pq
import ray

from synthgen.config.workflow import WorkflowBase
from synthgen.engine.registry import shared_state, validator_kind
from synthgen.runtime.cluster import alive_nodes
from synthgen.storage.layout import DATA, committed_files
from synthgen.storage.location import Location

log = logging.getLogger(__name__)
ABSORB_BATCH = 2000


@ray.remote(num_cpus=0)
class SharedStateActor:
    def __init__(self, spec: Any, shard: int, shards: int):
        self.state = shared_state(spec, shard, shards)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.state, method)(*args)

    def absorb(self, record_ids: list[str], fields: list[dict[str, Any]]) -> None:
        if hasattr(self.state, "absorb"):
            self.state.absorb(record_ids, fields)


class ActorState:
    """A worker's handle on one shard of a validator's state: `await handle.method(...)`."""

    def __init__(self, actor):
        self._actor = actor

    def __getattr__(self, method: str):
        async def call(*args: Any) -> Any:
            return await self._actor.call.remote(method, *args)

        return call


def create_shared_states(workflow: WorkflowBase, out: Location) -> dict[str, list[Any]]:
    """The shard actors of each validator that keeps run-wide state, loaded with the committed
    records; spread over the nodes."""
    shards = workflow.runtime.state_shards or alive_nodes()
    actors = {
        name: [SharedStateActor.options(scheduling_strategy="SPREAD").remote(spec, shard, shards) for shard in range(shards)]
        for name, spec in workflow.validators.items() if validator_kind(spec).shared is not None
    }
    if not actors:
        return {}
    everyone = [actor for shard_actors in actors.values() for actor in shard_actors]
    loaded = 0
    for file in committed_files(out, DATA):
        for batch in pq.ParquetFile(file.open_input_file()).iter_batches(batch_size=ABSORB_BATCH, columns=["record_id", *workflow.field_names]):
            rows = batch.to_pylist()
            record_ids = [row.pop("record_id") for row in rows]
            ray.get([actor.absorb.remote(record_ids, rows) for actor in everyone])
            loaded += len(rows)
    if loaded:
        log.info("run-wide validator state: %d committed records absorbed", loaded)
    return actors
