"""A workflow's seeds as a Ray Data stream. Read tasks parse the seed files in parallel, a group
of files each, and claim every seed id with the round's ledger: exact duplicates and seeds
committed before are dropped there, so only new seeds reach the workers and no process holds
the seeds. A source whose outcome depends on the reading order (a `limit`, near-duplicate
screening) is read by one task in file order, so that a resumed run picks the same seeds."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from synthgen.config.errors import UserError
from synthgen.config.workflow import SeedSource
from synthgen.engine.records import Seed
from synthgen.runtime.ledger import Ledger
from synthgen.seeds.load import SeedCounts, batched, kept_seeds, source_path
from synthgen.seeds.read import estimate_rows, read_files, seed_files

SEEDS_COLUMN = "seeds"
# Bytes of seed files one read task takes at least: a read task is a process to start (about a
# second of CPU), and parsing this much takes less.
READ_TASK_BYTES = 16 * 2**20


class SeedFiles(Datasource):
    """Read tasks over groups of a source's files: at most `readers` groups, and one per
    READ_TASK_BYTES of files. Each yields one-row blocks, a row holding a batch of seeds
    (`encode_seeds`): a block is what a worker runs at once, and Ray Data reshapes blocks by
    bytes, never by rows, so a batch travels as one row of a dataset whose blocks are kept below
    a byte (`runtime.cluster.one_row_blocks`)."""

    def __init__(self, source: SeedSource, sizes: dict[Path, int], ledger: Ledger, batch: int, readers: int):
        """`sizes`: the source's files and their bytes (`check_source`)."""
        super().__init__()
        self.source, self.sizes, self.ledger, self.batch = source, sizes, ledger, batch
        self.lone = not Path(source.path).is_dir()
        files = list(sizes)
        ordered = source.limit is not None or source.near_dedup is not None
        tasks = max(1, min(readers, len(files), -(-sum(sizes.values()) // READ_TASK_BYTES)))
        self.groups = [files] if ordered else _balanced(sizes, tasks)

    def estimate_inmemory_data_size(self) -> int:
        return sum(self.sizes.values())

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list[ReadTask]:
        return [
            ReadTask(
                functools.partial(_read, group, owner, self.source, self.ledger, self.batch, self.lone),
                BlockMetadata(num_rows=None, size_bytes=sum(self.sizes[f] for f in group), exec_stats=None,
                              input_files=[str(f) for f in group]),
            )
            for owner, group in enumerate(self.groups)
        ]


def _balanced(sizes: dict[Path, int], groups: int) -> list[list[Path]]:
    """The files of `sizes` in `groups` groups of about equal bytes (largest first, each to the
    lightest group)."""
    buckets: list[tuple[int, list[Path]]] = [(0, []) for _ in range(groups)]
    for file in sorted(sizes, key=sizes.__getitem__, reverse=True):
        size, members = min(buckets, key=lambda bucket: bucket[0])
        buckets.remove((size, members))
        buckets.append((size + sizes[file], members + [file]))
    return [sorted(members) for _, members in buckets if members]


def _read(files: list[Path], owner: int, source: SeedSource, ledger: Ledger, batch: int, lone: bool) -> Iterator[pa.Table]:
    counts = SeedCounts()
    read = 0

    def claim(seed_ids: list[str]) -> list[str]:
        nonlocal read
        statuses = ledger.claim(seed_ids, owner, read)
        read += len(seed_ids)
        return statuses

    seeds = kept_seeds(read_files(files, source, counts.skip, lone), source, counts, claim)
    for chunk in batched(seeds, batch):
        yield pa.table({SEEDS_COLUMN: [encode_seeds(chunk)]})
    ledger.report(owner, counts)


def encode_seeds(seeds: list[Seed]) -> str:
    return json.dumps([seed.model_dump() for seed in seeds])


def decode_seeds(batch: pa.Table) -> list[Seed]:
    return [Seed(**row) for text in batch.column(SEEDS_COLUMN).to_pylist() for row in json.loads(text)]


def check_source(source: SeedSource) -> tuple[dict[Path, int], int]:
    """Fail early, in the driver, on a source with no seed to read (a missing path, a lone file of
    unknown format, nothing readable); return its files with their bytes, and about how many
    seeds it holds. Reads until the first seed, so a large source costs nothing here."""
    path = source_path(source)
    files = seed_files(path)
    counts = SeedCounts()
    if next(read_files(files, source, counts.skip, lone=not path.is_dir()), None) is None:
        counts.log_skipped()
        raise UserError(f"no seeds found in {path} (format {source.format}, {counts.skipped} unreadable)")
    rows = estimate_rows(files, source)
    return {file: file.stat().st_size for file in files}, rows if source.limit is None else min(rows, source.limit)
