"""What one side of a merge changed since the base, by key, read from the files the two versions do not share.

Files both versions reference hold the same rows (Delta files are immutable; our tables use no deletion
vectors), and keys are unique within a snapshot, so the rows that can differ lie in the unshared files only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from mm_platform.lake.compare import same_values
from mm_platform.lake.schemas import joined_keys
from mm_platform.lake.snapshot import Snapshot

__all__ = ["Side", "changes", "joined_keys", "read_files", "rel_paths", "same_rows"]


@dataclass
class Side:
    """Rows one side changed since the base: upserts (its rows) and deletions, by joined key."""

    rows: pa.Table
    keys: pa.Array
    """Joined key of each row of ``rows``."""
    deleted: pa.Array
    """Joined keys the side deleted."""

    @property
    def all_keys(self) -> pa.Array:
        return pa.concat_arrays([self.keys, self.deleted])


def rel_paths(snapshot: Snapshot, name: str) -> list[str]:
    prefix = snapshot.location.uri(name) + "/"
    return [
        uri[len(prefix) :] if uri.startswith(prefix) else uri.rsplit("/", 1)[-1] for uri in snapshot.file_uris(name)
    ]


def read_files(snapshot: Snapshot, name: str, paths: Sequence[str], columns: Sequence[str] | None = None) -> pa.Table:
    schema = snapshot.schema(name)
    files = [snapshot.location.fs_path(name, p) for p in paths]
    dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=snapshot.location.fs)
    return dataset.to_table(columns=list(columns) if columns else None)


def changes(base: Snapshot, side: Snapshot, name: str) -> Side:
    key = side.catalog.spec(name).key
    if base.table_token(name) == side.table_token(name):
        empty = side.schema(name).empty_table()
        return Side(empty, pa.array([], pa.string()), pa.array([], pa.string()))
    files_base, files_side = rel_paths(base, name), rel_paths(side, name)
    shared = set(files_base) & set(files_side)
    old = read_files(base, name, [f for f in files_base if f not in shared])
    new = read_files(side, name, [f for f in files_side if f not in shared])
    old_keys, new_keys = joined_keys(old, key), joined_keys(new, key)
    position = pc.index_in(new_keys, value_set=old_keys)
    matched = np.asarray(position.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    changed = ~matched
    if matched.any():
        same = same_rows(old.take(position.filter(pa.array(matched))), new.filter(pa.array(matched)), key)
        changed[np.flatnonzero(matched)[~same]] = True
    deleted = old_keys.filter(pc.invert(pc.is_in(old_keys, value_set=new_keys)))
    return Side(new.filter(pa.array(changed)), new_keys.filter(pa.array(changed)), deleted)


def same_rows(left: pa.Table, right: pa.Table, key: Sequence[str]) -> np.ndarray:
    """Per row: equal in every column but the key (a column one side lacks reads as nulls)."""
    same = np.ones(left.num_rows, dtype=bool)
    for column in dict.fromkeys([*left.column_names, *right.column_names]):
        if column in key:
            continue
        data_type = (left.schema if column in left.column_names else right.schema).field(column).type
        a = left.column(column) if column in left.column_names else pa.nulls(left.num_rows, data_type)
        b = right.column(column) if column in right.column_names else pa.nulls(right.num_rows, data_type)
        same &= same_values(a, b)
    return same
