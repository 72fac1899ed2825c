"""Adaptive in-flight cap for one teacher in one worker.

Self-hosted endpoints (vLLM, llama.cpp) do not answer 429 when saturated: they queue, and latency
climbs. The gate watches latency against the best it has seen and shrinks the number of requests
it lets through when latency grows (multiplicative decrease), then grows it back a sixteenth of
`max_in_flight` at a time while latency stays near the baseline (additive increase)."""

from __future__ import annotations

import asyncio
import collections
import logging
import time

log = logging.getLogger(__name__)

_SMOOTHING = 0.2
_SLOW = 2.0  # latency this many times the baseline means the endpoint is queueing
_FAST = 1.3
_DECREASE = 0.75
_COOLDOWN_S = 2.0
# The first seconds of a run are noisy on the client side (workers starting, connections
# opening): no decision on them, or the gate shrinks for a slowness that was ours.
_WARM_UP_S = 5.0
# Growing back one request per cool-down would take minutes at hundreds in flight.
_INCREASE_FRACTION = 1 / 16
# The baseline creeps up slowly, so that a lasting change of the endpoint (another model, longer
# prompts) becomes the new normal instead of pinning the gate at one request.
_BASELINE_DRIFT = 1.005


class AdaptiveGate:
    def __init__(self, max_in_flight: int):
        self.max_in_flight = max_in_flight
        self.limit = float(max_in_flight)
        self.in_flight = 0
        self.baseline: float | None = None
        self.smoothed: float | None = None
        self._changed_at = 0.0
        self._first_seen: float | None = None
        # Waiters in arrival order, each woken only when a slot is handed to it: waking them all
        # on every release costs a wake-up per waiter per request (hundreds at high concurrency).
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def __aenter__(self) -> None:
        if not self._waiters and self.in_flight < int(self.limit):
            self.in_flight += 1
            return
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await slot  # resolved by `_admit`, which has counted us in already
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._release()
            else:
                self._waiters.remove(slot)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        self.in_flight -= 1
        self._admit()

    def _admit(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            slot = self._waiters.popleft()
            if not slot.done():
                self.in_flight += 1
                slot.set_result(None)

    def observe(self, latency_s: float) -> None:
        self.smoothed = latency_s if self.smoothed is None else (1 - _SMOOTHING) * self.smoothed + _SMOOTHING * latency_s
        self.baseline = self.smoothed if self.baseline is None else min(self.baseline * _BASELINE_DRIFT, self.smoothed)
        now = time.monotonic()
        if self._first_seen is None:
            self._first_seen = now
        if now - self._changed_at < _COOLDOWN_S or now - self._first_seen < _WARM_UP_S:
            return
        if self.smoothed > _SLOW * self.baseline and self.limit > 1:
            self.limit = max(1.0, self.limit * _DECREASE)
            self._changed_at = now
            log.info("teacher slowing down (%.2gx its best latency): %d requests in flight at most", self.smoothed / self.baseline, self.limit)
        elif self.smoothed < _FAST * self.baseline and self.limit < self.max_in_flight:
            self.limit = min(float(self.max_in_flight), self.limit + max(1.0, self.max_in_flight * _INCREASE_FRACTION))
            self._changed_at = now
            self._admit()
