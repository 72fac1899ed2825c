"""Workers stop asking teachers the moment the run's driver is gone.

When the driver dies (kill -9, a lost head node) Ray takes seconds to end its workers, and in
that time they would go on paying for requests whose answers nobody commits (and some never reach
the cache, so a resume pays for them again). Every teacher request first asks the lifeline: on
the driver's node, whether its process still runs (read from /proc, at most every few
milliseconds); elsewhere, whether an actor the driver owns still answers (Ray ends it with its
owner), polled by a thread."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_PROCESS_CHECK_EVERY_S = 0.005
_ACTOR_CHECK_EVERY_S = 0.5


@dataclass(frozen=True)
class Driver:
    pid: int
    node_id: str
    owned_actor: Any  # an actor handle the driver owns (it dies with the driver)

    @classmethod
    def this_process(cls, owned_actor: Any) -> Driver:
        import ray

        return cls(os.getpid(), ray.get_runtime_context().get_node_id(), owned_actor)


def lifeline(driver: Driver, node_id: str) -> Callable[[], bool]:
    """A cheap `alive()` for a worker on `node_id`."""
    if node_id == driver.node_id:
        return _ProcessWatch(driver.pid)
    return _ActorWatch(driver.owned_actor)


def process_alive(pid: int) -> bool:
    """Running, not a zombie (a killed process nobody has reaped yet still has a pid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in (b"Z", b"X")


class _ProcessWatch:
    def __init__(self, pid: int):
        self.pid = pid
        self._alive = True
        self._checked_at = float("-inf")

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._alive and now - self._checked_at >= _PROCESS_CHECK_EVERY_S:
            self._alive, self._checked_at = process_alive(self.pid), now
            if not self._alive:
                log.warning("the run's driver (pid %d) is gone: no more teacher requests from this worker", self.pid)
        return self._alive


class _ActorWatch:
    def __init__(self, actor: Any):
        self._alive = True
        threading.Thread(target=self._watch, args=(actor,), name="synthgen-lifeline", daemon=True).start()

    def _watch(self, actor: Any) -> None:
        import ray

        while True:
            time.sleep(_ACTOR_CHECK_EVERY_S)
            try:
                ray.get(actor.__ray_ready__.remote(), timeout=30)
            except ray.exceptions.RayActorError:
                self._alive = False
                log.warning("the run's driver is gone: no more teacher requests from this worker")
                return
            except Exception:  # noqa: BLE001 - a slow answer is not a death
                continue

    def __call__(self) -> bool:
        return self._alive
