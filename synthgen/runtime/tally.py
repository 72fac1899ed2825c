"""Live counts from the workers: each reports its settled seeds at most once a second, so the
driver can show progress while batches are still running (results reach the driver only a
whole batch at a time, and then the driver's own counts take over). The tally also knows the
round's workers, so that the driver can end them when the round ends."""

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
        self.workers: list = []

    def enlist(self, worker) -> None:
        self.workers.append(worker)

    def enlisted(self) -> list:
        return self.workers

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


def retire_workers(tally, timeout_s: float = 10.0) -> None:
    """End the round's workers once their queued calls are done. Ray Data drops its handles to
    them when the stream closes, but after a failed round a handle can stay referenced in the
    driver, and the idle worker then keeps its CPU slot: the next round's pool waits for that
    slot for ever."""
    try:
        workers = ray.get(tally.enlisted.remote(), timeout=timeout_s)
    except ray.exceptions.RayError as exc:
        log.warning("could not list the round's workers to end them: %s", exc)
        return
    for worker in workers:
        worker.__ray_terminate__.remote()


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
