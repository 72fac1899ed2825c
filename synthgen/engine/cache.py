"""Teacher response cache: a store with one file per request key, `CACHE/abc/<key>.json`.

A lookup opens one file, so no process ever loads the cache (a million answers cost each worker
nothing). An answer file is created exclusively and written in place; one torn by a process
killed mid-write does not parse, and is removed and asked again. The key hash spreads files over
4,096 folders (a few hundred each at a million answers). One file per key is also what object
stores serve natively.

Files replaced whole (`write_file`, the batch journal's) go through `CACHE/.staging/` and a
rename; the run that owns the cache clears what a killed writer left there (`discard_staged`).

On object storage (a run directory at s3:// or gs://) an entry is one object, and every upload
is whole: nothing is ever torn, and nothing is staged. A lookup there is a GET that the worker
waits for; a local or shared-filesystem cache is the fast one. The cache reaches object storage
through any `Place` (storage.location.Location is one), so the engine knows no storage API."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

STAGING = ".staging"


class Place(Protocol):
    """A folder or file on object storage, as the cache uses it."""

    def __truediv__(self, relative: str) -> Place: ...
    def read_bytes(self) -> bytes: ...  # FileNotFoundError when absent
    def write_bytes(self, data: bytes) -> None: ...  # whole, or not at all
    def files(self, suffix: str = "") -> Iterator[Place]: ...


class ResponseCache:
    def __init__(self, directory: str | Path | Place):
        self._remote = None if isinstance(directory, (str, Path)) else directory
        self._root = str(directory)  # keys are joined as strings: a Path per lookup costs more than the lookup
        if self._remote is None:
            (Path(directory) / STAGING).mkdir(parents=True, exist_ok=True)
        self._folders: set[str] = set()  # fan-out folders known to exist

    def _path(self, key: str) -> str:
        return f"{self._root}/{key[:3]}/{key}.json"

    def get(self, key: str) -> dict | None:
        if self._remote is not None:
            try:
                return json.loads((self._remote / f"{key[:3]}/{key}.json").read_bytes())
            except FileNotFoundError:
                return None
        path = self._path(key)
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # Torn by a writer killed mid-write (a prefix of a JSON object never parses). Removed,
            # so that the answer asked again can take its place.
            log.warning("cache entry %s unreadable (%s): asking the teacher again", key[:16], exc)
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None

    def put(self, key: str, response: dict) -> None:
        if self._remote is not None:
            (self._remote / f"{key[:3]}/{key}.json").write_bytes(json.dumps(response, ensure_ascii=False).encode())
            return
        folder = key[:3]
        if folder not in self._folders:
            os.makedirs(f"{self._root}/{folder}", exist_ok=True)
            self._folders.add(folder)
        data = json.dumps(response, ensure_ascii=False).encode()
        try:
            # Created exclusively and written in place, one folder level: two levels, a temporary
            # file and a rename cost 0.19 ms of CPU per answer here, this 0.03 ms (a whole
            # request, ~1.1 ms). A second process that answered the same request keeps the first
            # one's answer.
            handle = open(os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb")
        except FileExistsError:
            return
        with handle:
            handle.write(data)

    def write_file(self, relative: str, text: str) -> None:
        """Replace the file at `relative` (inside the cache) whole, or not at all."""
        if self._remote is not None:
            (self._remote / relative).write_bytes(text.encode("utf-8"))
            return
        target = Path(self._root) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(self._root) / STAGING / f"{target.name}.{os.getpid()}.tmp"
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)

    def read_files(self, folder: str, suffix: str) -> Iterator[tuple[str, bytes]]:
        """Name and content of each file in `folder` (inside the cache) ending with `suffix`."""
        if self._remote is not None:
            for place in (self._remote / folder).files(suffix):
                yield str(place), place.read_bytes()
            return
        for path in sorted((Path(self._root) / folder).glob(f"*{suffix}")):
            try:
                yield str(path), path.read_bytes()
            except FileNotFoundError:
                continue


def discard_staged(directory: str | Path) -> None:
    """Drop what writers killed mid-write left; only while no process writes to this cache."""
    staging = Path(directory) / STAGING
    for partial in staging.glob("*.tmp"):
        log.info("removing partial cache write %s", partial.name)
        partial.unlink(missing_ok=True)
