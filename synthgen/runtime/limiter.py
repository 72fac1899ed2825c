"""The cluster-wide rate limiter: one named Ray actor holds a token bucket per teacher (requests
and tokens per minute) for every worker of the run; workers take leases in chunks so that most
requests pay no round trip. It adapts: a 429 pauses every worker for Retry-After and halves the
rate, which then climbs back by a tenth every few seconds without another 429."""

from __future__ import annotations

import asyncio
import math
import time

import ray

from synthgen.config.workflow import Teacher

_MIN_FACTOR = 0.05
_RECOVERY_STEP = 0.1
_RECOVERY_EVERY_S = 3.0
_BURST_S = 0.5  # a bucket holds half a second of traffic: bursts stay small


class _Bucket:
    def __init__(self, per_minute: float | None):
        self.rate = per_minute / 60 if per_minute else None
        self.level = self.capacity(1.0)
        self.updated = time.monotonic()

    def capacity(self, factor: float) -> float:
        return max(1.0, self.rate * factor * _BURST_S) if self.rate else math.inf

    def refill(self, now: float, factor: float) -> None:
        if self.rate:
            self.level = min(self.capacity(factor), self.level + (now - self.updated) * self.rate * factor)
        self.updated = now


class _TeacherBudget:
    def __init__(self, teacher: Teacher):
        self.requests = _Bucket(teacher.requests_per_minute)
        self.tokens = _Bucket(teacher.tokens_per_minute)
        self.factor = 1.0
        self.paused_until = 0.0
        self.changed_at = time.monotonic()
        self.rate_limited_count = 0


@ray.remote(num_cpus=0)
class RateLimitActor:
    def __init__(self, teachers: dict[str, Teacher]):
        self.budgets = {name: _TeacherBudget(t) for name, t in teachers.items()}

    def lease(self, teacher: str, requests: int, tokens: int) -> tuple[int, int, float]:
        """Grant up to `requests` requests and `tokens` tokens; also say how long to wait when
        nothing could be granted."""
        budget = self.budgets[teacher]
        now = time.monotonic()
        if now < budget.paused_until:
            return 0, 0, budget.paused_until - now
        if now - budget.changed_at >= _RECOVERY_EVERY_S and budget.factor < 1.0:
            budget.factor = min(1.0, budget.factor + _RECOVERY_STEP)
            budget.changed_at = now
        for bucket in (budget.requests, budget.tokens):
            bucket.refill(now, budget.factor)
        available = budget.requests.level if budget.requests.rate else requests
        granted_requests = min(requests, int(available))
        affordable = budget.tokens.level >= tokens or budget.tokens.level >= budget.tokens.capacity(budget.factor)
        if granted_requests < 1 or not affordable:
            waits = [1.0 / (b.rate * budget.factor) for b in (budget.requests, budget.tokens) if b.rate]
            return 0, 0, min(waits, default=0.05)
        budget.requests.level -= granted_requests
        if budget.tokens.rate:
            budget.tokens.level -= tokens
        return granted_requests, tokens, 0.0

    def rate_limited(self, teacher: str, retry_after_s: float | None) -> None:
        budget = self.budgets[teacher]
        now = time.monotonic()
        budget.rate_limited_count += 1
        budget.paused_until = max(budget.paused_until, now + (retry_after_s if retry_after_s is not None else 1.0))
        if now - budget.changed_at >= 1.0:  # one halving per burst of 429s, not one per request
            budget.factor = max(_MIN_FACTOR, budget.factor * 0.5)
            budget.changed_at = now
        budget.requests.level = 0.0

    def stats(self) -> dict[str, dict]:
        return {name: {"factor": b.factor, "rate_limited": b.rate_limited_count} for name, b in self.budgets.items()}


def create_limiter(teachers: dict[str, Teacher]):
    """The run's limiter actor, or None when no teacher has a cluster-wide limit."""
    limited = {n: t for n, t in teachers.items() if t.requests_per_minute or t.tokens_per_minute}
    return RateLimitActor.remote(limited) if limited else None


class LeasedLimiter:
    """The worker's side: spends local leases, asks the actor for a chunk when they run out."""

    def __init__(self, actor, teacher: str, config: Teacher):
        self.actor = actor
        self.teacher = teacher
        per_second = (config.requests_per_minute or 60 * config.max_in_flight) / 60
        self.chunk = max(1, min(config.max_in_flight, int(per_second * 0.25)))
        self.requests = 0
        self.tokens = 0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        while True:
            if self.requests > 0 and self.tokens >= tokens:
                self.requests -= 1
                self.tokens -= tokens
                return
            async with self._lock:
                if self.requests > 0 and self.tokens >= tokens:
                    continue
                granted, granted_tokens, wait_s = await self.actor.lease.remote(self.teacher, self.chunk, tokens * self.chunk)
                self.requests += granted
                self.tokens += granted_tokens
                if not granted:
                    await asyncio.sleep(wait_s)

    def completed(self, tokens: int, latency_s: float) -> None:
        pass  # leases are taken up front from a generous estimate; nothing to return remotely

    def rate_limited(self, retry_after_s: float | None) -> None:
        self.requests = 0
        self.actor.rate_limited.remote(self.teacher, retry_after_s)
