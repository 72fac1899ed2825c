"""Teacher response cache: append-only JSONL segments, one per writer process.

One writer per segment means no locking across processes or nodes; a process killed mid-write
leaves at most a torn last line, which loading skips. Every process reads all segments, so a
resumed run finds the answers of requests that finished before the crash."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


class ResponseCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, dict] = {}
        for segment in sorted(self.directory.glob("seg-*.jsonl")):
            self._load(segment)
        self._segment = self.directory / f"seg-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._handle = None

    def _load(self, segment: Path) -> None:
        with segment.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    self._entries[entry["key"]] = entry["response"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.debug("torn cache line in %s skipped", segment)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def put(self, key: str, response: dict) -> None:
        self._entries[key] = response
        if self._handle is None:
            self._handle = self._segment.open("a", encoding="utf-8")
        # One write call per line so that a kill can tear only the line being written.
        self._handle.write(json.dumps({"key": key, "response": response}, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
