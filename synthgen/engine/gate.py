"""Adaptive in-flight cap for one teacher in one worker.

Self-hosted endpoints (vLLM, llama.cpp) do not answer 429 when saturated: they queue, and latency
climbs. The gate watches latency against the best it has seen and shrinks the number of requests
it lets through when latency grows (multiplicative decrease), then grows it back one step at a
time while latency stays near the baseline (additive increase), never above `max_in_flight`."""

from __future__ import annotations

import asyncio
import time

_SMOOTHING = 0.2
_SLOW = 2.0  # latency this many times the baseline means the endpoint is queueing
_FAST = 1.3
_DECREASE = 0.75
_COOLDOWN_S = 2.0
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
        self._condition = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._condition:
            await self._condition.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._condition:
            self.in_flight -= 1
            self._condition.notify_all()

    def observe(self, latency_s: float) -> None:
        self.smoothed = latency_s if self.smoothed is None else (1 - _SMOOTHING) * self.smoothed + _SMOOTHING * latency_s
        self.baseline = self.smoothed if self.baseline is None else min(self.baseline * _BASELINE_DRIFT, self.smoothed)
        now = time.monotonic()
        if now - self._changed_at < _COOLDOWN_S:
            return
        if self.smoothed > _SLOW * self.baseline and self.limit > 1:
            self.limit = max(1.0, self.limit * _DECREASE)
            self._changed_at = now
        elif self.smoothed < _FAST * self.baseline and self.limit < self.max_in_flight:
            self.limit = min(float(self.max_in_flight), self.limit + 1)
            self._changed_at = now
            # More room: wake waiters (they re-check the limit under the condition).
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._condition:
            self._condition.notify_all()
