"""Live progress of a run as log lines (readable in CI logs and pipes, not only on a TTY)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("synthgen")
EARLY_S, EARLY_INTERVAL_S = 60.0, 2.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    def __init__(self, total: int, interval_s: float = 10.0, steps: list[str] | None = None):
        self.total = total
        self.steps = steps or []
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last_log = self.started
        self._logged: tuple = ()
        self.done = self.records = self.rejects = self.unsettled = 0
        self.requests = self.tokens_out = 0
        self.live: dict[str, int] = {}

    def update(self, counts: dict[str, int]) -> None:
        """Add one seed's counts (`SeedResult.counts()`)."""
        for key, value in counts.items():
            setattr(self, key, getattr(self, key) + value)

    def absorb(self, counts: dict[str, int]) -> None:
        """Counts reported live by the workers, ahead of the results the driver has received;
        shown while they lead, never added to the driver's own."""
        self.live = dict(counts)

    def _shown(self, key: str) -> int:
        return max(getattr(self, key), self.live.get(key, 0))

    def maybe_log(self) -> None:
        """Log when the interval has passed; in a run's first minute every few seconds, so that a
        quick look shows movement at once."""
        now = time.monotonic()
        interval = min(self.interval_s, EARLY_INTERVAL_S) if now - self.started < EARLY_S else self.interval_s
        if now - self._last_log >= interval:
            self.log()

    def log(self) -> None:
        """Log the current line, unless nothing moved since the last one."""
        moved = (self._shown("done"), self._shown("requests"), tuple(sorted(self.live.items())))
        if moved != self._logged or moved[0] == 0:
            self._last_log = time.monotonic()
            self._logged = moved
            log.info(self.line())

    def line(self) -> str:
        done, records, rejects, unsettled = (self._shown(k) for k in ("done", "records", "rejects", "unsettled"))
        elapsed = max(time.monotonic() - self.started, 1e-6)
        percent = 100.0 * done / self.total if self.total else 100.0
        eta = _duration((self.total - done) * elapsed / done) if done else "?"
        text = (
            f"{done}/{self.total} seeds ({percent:.0f}%) | {records} accepted | {rejects} rejected"
            f" | {self._shown('requests') / elapsed:.1f} req/s | {self._shown('tokens_out') / elapsed:.0f} tok/s"
            f" | elapsed {_duration(elapsed)} | eta {eta}"
        )
        steps = [f"{step} {self.live[f'step:{step}']}" for step in self.steps if self.live.get(f"step:{step}")]
        if steps and done < self.total:  # samples through each step: a long seed moves too
            text += " | through " + ", ".join(steps)
        return text + (f" | {unsettled} unsettled" if unsettled else "")
