"""A run directory's layout, owned here for its writer and every reader (resume, inspect, mix,
dedup preload): the folder names, the shard schema (derived from the record models, so the record
is declared once), and which parts are committed. A run directory is a `Location`: a local
folder or an object-store prefix.

    OUT/_commits/part-N.json          commit markers: the seed ids a part covers, its files (the commit point)
    OUT/data/part-N-WRITER.parquet    accepted records
    OUT/rejects/part-N-WRITER.parquet rejected samples, with stage, reason and raw answer
    OUT/manifest.json                 the run's summary
    OUT/cache/                        teacher responses

Readers honour only the parts a marker lists: a part without a marker (its writer died before
committing) is never read, and the next writer deletes it.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from synthgen.engine.records import OPTIONAL_COLUMNS, Record, Reject
from synthgen.storage.location import Location

COMMITS = "_commits"
DATA = "data"
REJECTS = "rejects"
MANIFEST = "manifest.json"
CACHE = "cache"
FIELDS = "fields"  # the record attribute whose entries become one column each
REJECT_COLUMNS = tuple(name for name in Reject.model_fields if name not in Record.model_fields)

_SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
_NARROWED = {"arrow:int32": pa.int32(), "arrow:timestamp_ms_utc": pa.timestamp("ms", tz="UTC")}


def _arrow_type(annotation: Any, metadata: list[Any]) -> pa.DataType:
    for item in metadata:
        if item in _NARROWED:
            return _NARROWED[item]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([(name, _arrow_type(f.annotation, f.metadata)) for name, f in annotation.model_fields.items()])
    if typing.get_origin(annotation) is list:
        [item] = typing.get_args(annotation)
        return pa.list_(_arrow_type(item, []))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        present = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _arrow_type(present[0], []) if len(present) == 1 else pa.string()
    if typing.get_origin(annotation) is typing.Literal:
        return pa.string()
    return _SCALARS[annotation]


def record_schema(field_names: list[str], rejects: bool, optional: tuple[str, ...] = ()) -> pa.Schema:
    """The shard schema: the record's columns, one string column per workflow field in place of
    `fields`, and for rejects their stage, reason and raw answer. Of the optional columns
    (preference pairs, pivotal tokens) only those the workflow's steps fill: the shards of every
    other workflow keep their schema."""
    model = Reject if rejects else Record
    columns: list[tuple[str, pa.DataType]] = []
    for name, field in model.model_fields.items():
        if name in OPTIONAL_COLUMNS and name not in optional:
            continue
        if name == FIELDS:
            columns += [(field_name, pa.string()) for field_name in field_names]
        else:
            columns.append((name, _arrow_type(field.annotation, field.metadata)))
    return pa.schema(columns)


def shard_row(item: Record, field_names: list[str], optional: tuple[str, ...] = ()) -> dict:
    row = item.model_dump(exclude={FIELDS, *(set(OPTIONAL_COLUMNS) - set(optional))})
    row["created_at"] = int(item.created_at * 1000)
    for name in field_names:
        row[name] = item.fields.get(name)
    return row


def commit_markers(out: str | Path | Location) -> list[dict]:
    return list(iter_markers(out))


def iter_markers(out: str | Path | Location) -> Iterator[dict]:
    """The commit markers one at a time: together they list every committed seed id, which a
    large run must not hold at once."""
    for marker in (Location.of(out) / COMMITS).files(".json"):
        if marker.name.startswith("part-"):
            yield json.loads(marker.read_text())


def committed_seed_ids(out: str | Path | Location) -> Iterator[list[str]]:
    for marker in iter_markers(out):
        yield marker["seed_ids"]


def committed_files(out: str | Path | Location, sub: str) -> list[Location]:
    """The Parquet parts of `sub` (DATA or REJECTS) that commit markers list."""
    out = Location.of(out)
    return [out / marker["files"][sub] for marker in iter_markers(out) if marker["files"].get(sub)]


def is_run(path: str | Path | Location) -> bool:
    return (Location.of(path) / COMMITS).is_dir()
