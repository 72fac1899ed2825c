"""The Ray Data actor that runs the workflow engine: one per pool slot, many seeds at once.

Its `__call__` is a coroutine, so Ray Data runs it on the actor's event loop and keeps several
batches in flight; inside a batch all seeds run concurrently, bounded by each teacher's
`max_in_flight`. A slow teacher therefore never idles the actor's core."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import traceback

import pyarrow as pa

from synthgen.config.workflow import Teacher, WorkflowBase
from synthgen.engine.cache import ResponseCache
from synthgen.engine.records import Reject, Seed, SeedResult
from synthgen.engine.registry import build_validators
from synthgen.engine.sandbox import open_sandbox
from synthgen.engine.teacher import TeacherClient
from synthgen.engine.transport import load_http_libraries
from synthgen.engine.validators.base import Services
from synthgen.engine.workflow import WorkflowRunner
from synthgen.runtime.lifeline import Driver, lifeline
from synthgen.runtime.limiter import LeasedLimiter
from synthgen.runtime.seed_stream import decode_seeds
from synthgen.runtime.shared import ActorState
from synthgen.runtime.writer import settled_batch
from synthgen.storage.location import Location

log = logging.getLogger(__name__)

TALLY_EVERY_S = 1.0
_LIVE = {"requests", "tokens_out"}  # counted as paid, by the teachers, not when a seed settles


class WorkflowWorker:
    def __init__(self, workflow: WorkflowBase, api_keys: dict[str, str], cache_dir: str, limiter=None, tally=None,
                 shared_states=None, driver: Driver | None = None):
        self.workflow = workflow
        self.driver = driver
        self.tally = tally
        self.shared_states = shared_states or {}
        self.api_keys = api_keys
        self.cache_dir = cache_dir
        self.limiter = limiter
        if tally is not None:
            import ray

            tally.enlist.remote(ray.get_runtime_context().current_actor)
        self._runner: WorkflowRunner | None = None
        self._sandbox = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unreported: dict[str, int] = {}
        self._reported: dict[str, int] = {}  # the live counters as last reported
        self._reporter: asyncio.Task | None = None  # held: the loop keeps only weak references to tasks
        # Paid while the pool starts (a run seeds the workers once all are up), not with the
        # first seeds waiting on it and the other workers' requests in flight; and before the
        # freeze below, so that these imports are frozen too.
        load_http_libraries()
        # A worker allocates a few hundred small objects per request (HTTP, JSON, records) and
        # keeps few: the default collector (every 700 allocations, scanning everything imported)
        # costs ~15 % of its CPU at a thousand requests a second. Imports are frozen out of the
        # scans; young objects are collected every 50,000 allocations instead.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)

    def __del__(self):
        """Close teacher sessions on their own loop, and the sandbox (containers do not die with us)."""
        if self._sandbox is not None:
            self._sandbox.close()
        loop, runner = self._loop, self._runner
        if runner is None or loop is None or not loop.is_running() or _runs_on(loop):
            return
        future = asyncio.run_coroutine_threadsafe(runner.close(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=5)

    def _build_runner(self) -> WorkflowRunner:
        # Built on first call, inside the actor's event loop, which owns the HTTP connections.
        import ray

        place = Location.of(self.cache_dir)
        cache = ResponseCache(place.local if place.is_local else place)
        node = ray.get_runtime_context().get_node_id()
        alive = lifeline(self.driver, node) if self.driver is not None else None
        teachers = {
            name: TeacherClient(name, config, cache, self.api_keys.get(name), self._leases(name, config), alive)
            for name, config in self.workflow.teachers.items()
        }
        services = Services(sandbox=self._open_sandbox, shared=lambda name: [ActorState(shard) for shard in self.shared_states[name]])
        validators = build_validators(self.workflow, services)
        return WorkflowRunner(self.workflow, teachers, node=node, validators=validators)

    def _open_sandbox(self):
        if self._sandbox is None:
            config = self.workflow.sandbox
            self._sandbox = open_sandbox(config.backend, slots=config.slots, image=config.image)
        return self._sandbox

    def _leases(self, name: str, config: Teacher) -> LeasedLimiter | None:
        # A provider's batch queue has limits of its own: rates apply to online requests.
        if self.limiter is None or config.mode == "batch" or not (config.requests_per_minute or config.tokens_per_minute):
            return None
        return LeasedLimiter(self.limiter, name, config)

    async def __call__(self, batch: pa.Table) -> pa.Table:
        if self._runner is None:
            self._loop = asyncio.get_running_loop()
            self._runner = self._build_runner()
            if self.tally is not None:
                self._reporter = asyncio.ensure_future(self._report_live())
        results = await asyncio.gather(*(self._run_one(seed) for seed in decode_seeds(batch)))
        return settled_batch(results, self.workflow.field_names, self.workflow.record_columns)

    async def _run_one(self, seed: Seed) -> SeedResult:
        result = await self._settle(seed)
        if self.tally is not None:
            for key, value in result.counts().items():
                if key not in _LIVE:  # requests and tokens are reported as they are paid
                    self._unreported[key] = self._unreported.get(key, 0) + value
        return result

    async def _report_live(self) -> None:
        """Every TALLY_EVERY_S, what moved: seeds settled, requests and tokens paid, samples
        through each step (a long seed shows progress long before it settles). One Ray call a
        second, not one per seed: that would cost more CPU than a seed's HTTP requests."""
        while True:
            await asyncio.sleep(TALLY_EVERY_S)
            assert self._runner is not None
            teachers = self._runner.teachers.values()
            now = {"requests": sum(t.paid_requests for t in teachers), "tokens_out": sum(t.paid_tokens_out for t in teachers),
                   **{f"step:{step}": count for step, count in self._runner.steps_done.items()}}
            moved = {key: value - self._reported.get(key, 0) for key, value in now.items()}
            moved = {key: value for key, value in {**self._unreported, **moved}.items() if value}
            if moved:
                self.tally.add.remote(moved)
            self._unreported, self._reported = {}, now

    async def _settle(self, seed: Seed) -> SeedResult:
        assert self._runner is not None
        try:
            return await self._runner.run(seed)
        except Exception as exc:  # a bug must cost one seed, with its reason, not the run
            log.error("internal error on seed %s:\n%s", seed.seed_id, traceback.format_exc())
            base = self._runner.base_fields(seed)
            reason = f"internal error: {type(exc).__name__}: {exc}"[:500]
            return SeedResult(seed_id=seed.seed_id, rejects=[Reject(**base, stage="internal", reason=reason)])


def _runs_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
