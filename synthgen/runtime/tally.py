"""Live counts from the workers: each reports its settled seeds at most once a second, so the
driver can show progress while batches are still running (results reach the driver only a
whole batch at a time, and then the driver's own counts take over)."""

from __future__ import annotations

import logging
import threading

import ray

from synthgen.runtime.progress import EARLY_INTERVAL_S

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0)
class TallyActor:
    def __init__(self):
        self.counts: dict[str, int] = {}

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


class LiveProgress:
    """A thread that copies the tally into `progress` and logs it every interval."""

    def __init__(self, tally, progress, interval_s: float):
        self.tally, self.progress, self.interval_s = tally, progress, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synthgen-progress", daemon=True)

    def __enter__(self) -> LiveProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # Wait for the thread whatever it is doing: a Ray call after ray.shutdown ends the process.
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(min(self.interval_s, EARLY_INTERVAL_S)):
            try:
                self.progress.absorb(ray.get(self.tally.snapshot.remote(), timeout=2))
            except Exception as exc:  # noqa: BLE001 - progress must never break a run
                log.debug("live progress unavailable: %s", exc)
                continue
            self.progress.maybe_log()
