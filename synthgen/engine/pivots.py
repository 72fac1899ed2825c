"""Pivotal Token Search (the Phi-4 report, section 4.3): the tokens of an answer at which the
chance that the answer ends up right changes by at least a threshold.

P(success | prefix) is the share of sampled continuations of the prefix that an oracle accepts;
the whole answer's P is its own verdict. The search is the report's recursive subdivision: a
segment whose two ends differ by less than the threshold holds no pivotal token; one that
differs is split in half until it is one token long. Like the report's, it cannot see two
pivotal tokens inside one segment that cancel out (down 0.3 then up 0.3); `span` first cuts the
answer into segments of at most that many tokens, which bounds where that can happen.

Estimates are budget-aware: both ends of a segment are sampled in rounds (min_samples, then
doubling up to max_samples) until a confidence interval decides whether their difference reaches
the threshold; only an undecided comparison at max_samples falls back to the point estimates.
A single token is reported pivotal only on the full budget.
An estimate is shared by every comparison that needs its prefix and only ever extended."""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from statistics import NormalDist

# Draw `count` samples of a prefix, numbered from `first`: (accepted, continuation text) each.
Draw = Callable[[str, int, int], Awaitable[list[tuple[bool, str]]]]
FirstToken = Callable[[str], Awaitable[str]]


@dataclass
class SuccessEstimate:
    """A prefix's chance of success: the outcomes of its continuations sampled so far."""

    outcomes: list[bool] = field(default_factory=list)
    continuations: list[str] = field(default_factory=list)
    exact: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def p(self, n: int | None = None) -> float:
        """The share of accepted samples among the first n (all by default)."""
        outcomes = self.outcomes if self.exact or n is None else self.outcomes[:n]
        return sum(outcomes) / len(outcomes) if outcomes else 0.5

    def interval(self, z: float, n: int) -> tuple[float, float]:
        """Wilson score interval of the first n samples (a point for an exact value). Always the
        first n: a comparison decides the same way whatever other comparisons sampled meanwhile,
        so a rerun from the cache retraces the search exactly."""
        if self.exact:
            return self.p(), self.p()
        n = min(n, len(self.outcomes))
        if not n:
            return 0.0, 1.0
        p, z2 = self.p(n), z * z
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Pivot:
    position: int  # index of the token in the answer's pieces
    prefix: str  # the answer before it
    token: str
    p_before: float
    p_after: float
    samples: int  # samples behind the two estimates

    @property
    def delta(self) -> float:
        return self.p_after - self.p_before


@dataclass(frozen=True)
class Counterpart:
    """A token sampled at a pivot's position that moves P the other way."""

    token: str
    p: float
    samples: int


class Search:
    def __init__(self, draw: Draw, *, threshold: float = 0.2, min_samples: int = 8, max_samples: int = 64,
                 confidence: float = 0.95):
        self.draw = draw
        self.threshold = threshold
        self.min_samples = min(min_samples, max_samples)
        self.max_samples = max_samples
        self.z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
        self.estimates: dict[str, SuccessEstimate] = {}

    @property
    def samples_drawn(self) -> int:
        return sum(len(e.outcomes) for e in self.estimates.values() if not e.exact)

    def known(self, prefix: str, accepted: bool) -> None:
        """A prefix whose P is known exactly: the whole answer, with its own verdict."""
        self.estimates[prefix] = SuccessEstimate(outcomes=[accepted], exact=True)

    async def _sampled(self, prefix: str, n: int) -> SuccessEstimate:
        estimate = self.estimates.setdefault(prefix, SuccessEstimate())
        async with estimate.lock:
            have = len(estimate.outcomes)
            if not estimate.exact and have < n:
                drawn = await self.draw(prefix, have, n - have)
                estimate.outcomes.extend(accepted for accepted, _ in drawn)
                estimate.continuations.extend(text for _, text in drawn)
        return estimate

    async def gap(self, before: str, after: str, confirm: bool = False) -> float | None:
        """P(after) - P(before) when it reaches the threshold in size, else None. With `confirm`
        (a verdict that is reported: one token, a pair's alternative) only "no" may come early:
        "yes" waits for the full budget. Among thousands of comparisons, a few first rounds of 16
        look like a jump by chance; across a whole segment that only costs samples further down,
        on one token it would be reported."""
        n = self.min_samples
        while True:
            a, b = await asyncio.gather(self._sampled(before, n), self._sampled(after, n))
            (a_low, a_high), (b_low, b_high) = a.interval(self.z, n), b.interval(self.z, n)
            pa, pb = a.p(n), b.p(n)
            difference = pb - pa
            # Newcombe's interval for a difference of two proportions, from their Wilson intervals.
            low = difference - math.hypot(pb - b_low, a_high - pa)
            high = difference + math.hypot(b_high - pb, pa - a_low)
            if (low >= self.threshold or high <= -self.threshold) and (not confirm or n >= self.max_samples):
                return difference
            if -self.threshold < low and high < self.threshold:
                return None
            if n >= self.max_samples:
                return difference if abs(difference) >= self.threshold else None
            n = min(self.max_samples, 2 * n)

    async def find(self, pieces: list[str], accepted: bool, span: int = 0) -> list[Pivot]:
        """The pivotal tokens of an answer cut into `pieces`, whose verdict is `accepted`."""
        prefixes = ["".join(pieces[:i]) for i in range(len(pieces) + 1)]
        self.known(prefixes[-1], accepted)

        async def subdivide(start: int, end: int) -> list[int]:
            if await self.gap(prefixes[start], prefixes[end], confirm=end - start == 1) is None:
                return []
            if end - start == 1:
                return [start]
            middle = (start + end) // 2
            left, right = await asyncio.gather(subdivide(start, middle), subdivide(middle, end))
            return left + right

        cuts = list(range(0, len(pieces), span)) if span else [0]
        ends = [*cuts[1:], len(pieces)]
        found = await asyncio.gather(*(subdivide(a, b) for a, b in zip(cuts, ends) if b > a))
        pivots = []
        for position in (position for group in found for position in group):
            # Read once the search is over: every estimate is then as large as it will get.
            before, after = self.estimates[prefixes[position]], self.estimates[prefixes[position + 1]]
            samples = sum(len(e.outcomes) for e in (before, after) if not e.exact)
            pivots.append(Pivot(position, prefixes[position], pieces[position], before.p(), after.p(), samples))
        return pivots

    async def counterpart(self, pivot: Pivot, first_token: FirstToken, tries: int) -> Counterpart | None:
        """Among the tokens that continuations of the pivot's prefix began with, the most frequent
        ones (up to `tries`) are estimated in turn; the first whose P differs from the pivot's by
        the threshold, the other way, is its counterpart."""
        sampled = self.estimates[pivot.prefix].continuations
        distinct = list(dict.fromkeys(sampled))
        firsts = dict(zip(distinct, await asyncio.gather(*(first_token(text) for text in distinct))))
        counts = collections.Counter(firsts[text] for text in sampled)
        after = pivot.prefix + pivot.token
        for token, _ in [item for item in counts.most_common() if item[0] and item[0] != pivot.token][:tries]:
            difference = await self.gap(after, pivot.prefix + token, confirm=True)
            if difference is not None and difference * pivot.delta < 0:
                estimate = self.estimates[pivot.prefix + token]
                return Counterpart(token, estimate.p(), len(estimate.outcomes))
        return None
