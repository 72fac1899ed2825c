"""A round's seed ledger: which seed ids the stream has seen, and which are settled (committed
before the round, or handed to the writer during it). Its shards are actors that keep their ids
in SQLite's private temporary database (on disk beyond a small page cache, deleted when the
connection closes), so neither they nor the driver hold a run's ids in memory.

Each read task claims its seeds under its own number and their place in its reading order: a
task Ray runs again after a failure reads the same seeds in the same order and gets them back as
new, while a second copy of a seed anywhere in the input (in the same task too) is a duplicate."""

from __future__ import annotations

import sqlite3
import zlib
from typing import Any

import ray

from synthgen.seeds.load import COMMITTED, DUPLICATE, NEW, SeedCounts
from synthgen.storage.layout import committed_seed_ids

PAGE_CACHE_KB = 8192


@ray.remote(num_cpus=0)
class LedgerShard:
    def __init__(self, out: str, shard: int, shards: int):
        self.db = sqlite3.connect("", isolation_level=None)
        self.db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KB}")
        # owner, place: the read task that claimed the id and where in its reading order (NULL:
        # committed before the round, not read yet)
        self.db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, owner INTEGER, place INTEGER, settled INTEGER NOT NULL) WITHOUT ROWID")
        self.committed = 0
        self.db.execute("BEGIN")
        for seed_ids in committed_seed_ids(out):
            mine = [(seed_id,) for seed_id in seed_ids if shard_of(seed_id, shards) == shard]
            self.committed += self.db.executemany("INSERT OR IGNORE INTO ids VALUES (?, NULL, NULL, 1)", mine).rowcount
        self.db.execute("COMMIT")
        self.counts: dict[int, SeedCounts] = {}

    def claim(self, seeds: list[tuple[str, int]], owner: int) -> list[str]:
        """`seeds`: (seed id, place in the task's reading order) pairs."""
        statuses = []
        self.db.execute("BEGIN")
        for seed_id, place in seeds:
            row = self.db.execute("SELECT owner, place, settled FROM ids WHERE id = ?", (seed_id,)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO ids VALUES (?, ?, ?, 0)", (seed_id, owner, place))
                statuses.append(NEW)
            elif row[0] is None:
                self.db.execute("UPDATE ids SET owner = ?, place = ? WHERE id = ?", (owner, place, seed_id))
                statuses.append(COMMITTED)
            elif (row[0], row[1]) != (owner, place):
                statuses.append(DUPLICATE)
            else:
                statuses.append(COMMITTED if row[2] else NEW)
        self.db.execute("COMMIT")
        return statuses

    def settle(self, seed_ids: list[str]) -> list[str]:
        """Mark the ids settled; return those that were not already (a seed settles once)."""
        fresh = []
        self.db.execute("BEGIN")
        for seed_id in seed_ids:
            if self.db.execute("UPDATE ids SET settled = 1 WHERE id = ? AND settled = 0", (seed_id,)).rowcount or \
                    self.db.execute("INSERT OR IGNORE INTO ids VALUES (?, NULL, NULL, 1)", (seed_id,)).rowcount:
                fresh.append(seed_id)
        self.db.execute("COMMIT")
        return fresh

    def report(self, owner: int, counts: SeedCounts) -> None:
        self.counts[owner] = counts  # a task run again reports again: its last report stands

    def totals(self) -> tuple[int, SeedCounts]:
        total = SeedCounts()
        for counts in self.counts.values():
            total.add(counts)
        return self.committed, total


def shard_of(seed_id: str, shards: int) -> int:
    return zlib.crc32(seed_id.encode()) % shards  # the same in every process (hash() is salted)


class Ledger:
    """The shards of one round's ledger, split by seed id. Picklable: the driver, the read tasks
    and the writer share one."""

    def __init__(self, shards: list[Any]):
        self.shards = shards

    @classmethod
    def start(cls, out: str, shards: int) -> Ledger:
        return cls([LedgerShard.remote(out, shard, shards) for shard in range(shards)])

    def claim(self, seed_ids: list[str], owner: int, first_place: int) -> list[str]:
        """Claim the ids read by task `owner` from place `first_place` of its reading order on."""
        parts = self._split(seed_ids)
        answers = ray.get([self.shards[s].claim.remote([(seed_ids[i], first_place + i) for i in part], owner)
                           for s, part in parts])
        statuses = [""] * len(seed_ids)
        for (_, part), answer in zip(parts, answers):
            for index, status in zip(part, answer):
                statuses[index] = status
        return statuses

    def settle(self, seed_ids: list[str]) -> set[str]:
        parts = self._split(seed_ids)
        answers = ray.get([self.shards[s].settle.remote([seed_ids[i] for i in part]) for s, part in parts])
        return {seed_id for answer in answers for seed_id in answer}

    def report(self, owner: int, counts: SeedCounts) -> None:
        ray.get(self.shards[0].report.remote(owner, counts))

    def totals(self) -> tuple[int, SeedCounts]:
        """The ids committed before the round, and what the read tasks reported."""
        answers = ray.get([shard.totals.remote() for shard in self.shards])
        committed, counts = sum(a[0] for a in answers), SeedCounts()
        for _, part in answers:
            counts.add(part)
        return committed, counts

    def close(self) -> None:
        for shard in self.shards:
            ray.kill(shard)

    def _split(self, seed_ids: list[str]) -> list[tuple[int, list[int]]]:
        parts: dict[int, list[int]] = {}
        for index, seed_id in enumerate(seed_ids):
            parts.setdefault(shard_of(seed_id, len(self.shards)), []).append(index)
        return list(parts.items())
