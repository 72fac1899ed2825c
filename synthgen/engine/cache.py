"""Teacher response cache: a store with one file per request key, `CACHE/ab/cd/<key>.json`.

A lookup opens one file, so no process ever loads the cache (a million answers cost each worker
nothing). An answer is written in `CACHE/.staging/` and renamed into place: a process killed
mid-write leaves a partial file there, never a torn answer, and the run that owns the cache clears
the folder (`discard_staged`) once no worker can be writing. Two processes answering the same
request leave one whole answer. One file per key is also what object stores serve natively.
The key hash spreads files over 65,536 folders, a few per folder even at millions of answers."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

STAGING = ".staging"


class ResponseCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._staging = self.directory / STAGING
        self._staging.mkdir(parents=True, exist_ok=True)
        self._folders: set[str] = set()  # fan-out folders known to exist

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / key[2:4] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # unreadable: ask again rather than fail the seed
            log.warning("cache entry %s unreadable (%s): asking the teacher again", key[:16], exc)
            return None

    def put(self, key: str, response: dict) -> None:
        path = self._path(key)
        folder = key[:4]
        if folder not in self._folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        self.write_file(path, json.dumps(response, ensure_ascii=False))

    def write_file(self, path: Path, text: str) -> None:
        """Replace `path` (inside the cache) whole, or not at all."""
        temp = self._staging / f"{path.name}.{os.getpid()}.tmp"
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)


def discard_staged(directory: str | Path) -> None:
    """Drop what writers killed mid-write left; only while no process writes to this cache."""
    staging = Path(directory) / STAGING
    for partial in staging.glob("*.tmp"):
        log.info("removing partial cache write %s", partial.name)
        partial.unlink(missing_ok=True)
