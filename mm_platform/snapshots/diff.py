"""What changed between two published snapshots: rows added, changed and removed per data table.

Rows are matched by each table's key (``lake.catalog[name].key``); a matched row is *changed* when any other
column differs. Nothing is hidden by default: a re-run rewrites lineage columns such as ``run_id``, and the
diff says so (per column, in ``changed_columns``) unless the caller passes ``ignore_columns``.

The work is proportional to what changed, not to the table:

* a table whose pinned Delta version is the same in both snapshots is not read at all;
* otherwise only the files that are in one version and not the other are read. A Parquet file that both
  versions reference holds the same rows in both (Delta files are immutable and our tables use no deletion
  vectors), and since keys are unique within a snapshot, a key in a shared file cannot appear in a file
  unique to either side. So the rows that can differ are exactly those in the unshared files.

Keys are matched with an Arrow hash join, and values are compared column by column with Arrow kernels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from mm_platform.errors import ConfigError
from mm_platform.lake import Lake, Snapshot, TableCatalog
from mm_platform.lake.compare import same_values
from mm_platform.tables import MEDIA

__all__ = ["SnapshotDiff", "TableDiff", "diff_snapshots", "resolve_snapshot"]

DEFAULT_SAMPLE_SIZE = 10
_ROW_A, _ROW_B = "__mmp_row_a", "__mmp_row_b"


@dataclass(frozen=True)
class TableDiff:
    """How one table differs between two snapshots."""

    table: str
    key: tuple[str, ...]
    """The columns rows are matched by."""
    version_a: int
    """The Delta version snapshot ``a`` pins."""
    version_b: int
    """The Delta version snapshot ``b`` pins."""
    added: int = 0
    """Rows whose key is in ``b`` only."""
    changed: int = 0
    """Rows whose key is in both and whose other (not ignored) columns differ."""
    removed: int = 0
    """Rows whose key is in ``a`` only."""
    rewritten_unchanged: int = 0
    """Rows that were rewritten into new files but are equal (e.g. kept beside a replaced row)."""
    changed_columns: dict[str, int] = field(default_factory=dict)
    """Per column, how many matched rows differ in it (a row may differ in several)."""
    added_keys: list[dict[str, Any]] = field(default_factory=list)
    """Up to the sample size of added keys, in key order."""
    changed_keys: list[dict[str, Any]] = field(default_factory=list)
    removed_keys: list[dict[str, Any]] = field(default_factory=list)

    read: bool | None = None
    """Whether the table was read (None: decided by the versions, as for two main snapshots)."""

    @property
    def compared(self) -> bool:
        """Whether the table was read (its content differs between the snapshots' pinned versions)."""
        return self.version_a != self.version_b if self.read is None else self.read

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": list(self.key),
            "version_a": self.version_a,
            "version_b": self.version_b,
            "compared": self.compared,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "rewritten_unchanged": self.rewritten_unchanged,
            "changed_columns": dict(self.changed_columns),
            "added_keys": self.added_keys,
            "changed_keys": self.changed_keys,
            "removed_keys": self.removed_keys,
        }


@dataclass(frozen=True)
class SnapshotDiff:
    """Per data table, the rows that differ between snapshots ``a`` and ``b``."""

    a: int | str
    """A main snapshot's seq, or a reference (``main``, ``exp``, ``exp@3``)."""
    b: int | str
    tables: dict[str, TableDiff]
    ignore_columns: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return all(t.is_empty for t in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "ignore_columns": list(self.ignore_columns),
            "tables": {name: t.to_dict() for name, t in self.tables.items()},
        }


def diff_snapshots(
    lake: Lake,
    a: int | str | Snapshot,
    b: int | str | Snapshot,
    *,
    tables: Sequence[str] | None = None,
    ignore_columns: Iterable[str] = (),
    sample_size: int = DEFAULT_SAMPLE_SIZE,
) -> SnapshotDiff:
    """Compare snapshot ``a`` with snapshot ``b`` (``0`` is the empty lake) table by table.

    ``ignore_columns`` (e.g. ``run_id``) are left out of the comparison wherever a table has them.
    ``sample_size`` bounds the keys listed per category; the counts are always complete.
    """
    snap_a, snap_b = resolve_snapshot(lake, a), resolve_snapshot(lake, b)
    pinned = set(snap_a.table_versions) | set(snap_b.table_versions)
    # A table added to the catalog after both snapshots were published is in neither: nothing to compare.
    names = list(tables) if tables is not None else [name for name in lake.catalog if name in pinned]
    for name in names:
        lake.catalog.spec(name)  # an unknown name is a ConfigError listing the known tables
    ignored = tuple(dict.fromkeys(ignore_columns))
    _check_ignored(lake.catalog, ignored, names)
    return SnapshotDiff(
        a=_label(a, snap_a),
        b=_label(b, snap_b),
        tables={name: _diff_table(name, snap_a, snap_b, set(ignored), sample_size) for name in names},
        ignore_columns=ignored,
    )


def resolve_snapshot(lake: Lake, ref: int | str | Snapshot) -> Snapshot:
    """A seq of ``lake`` (main or the branch it is on), a reference such as ``exp@3``, or a snapshot."""
    if isinstance(ref, Snapshot):
        return ref
    if isinstance(ref, int) or ref.isdigit():
        return lake.snapshot(seq=int(ref))
    from mm_platform.lake.branch import resolve

    return resolve(lake, ref)


def _label(ref: int | str | Snapshot, snapshot: Snapshot) -> int | str:
    if isinstance(ref, Snapshot):
        return f"{snapshot.branch or 'main'}@{snapshot.seq}"
    return int(ref) if isinstance(ref, int) or ref.isdigit() else ref


def object_keys(snapshots: Sequence[Snapshot], media_ids: Iterable[str]) -> dict[str, str]:
    """media_id → the object key (what a person recognises), from whichever snapshot has the row."""
    wanted = pa.array(sorted(set(media_ids)), pa.string())
    found: dict[str, str] = {}
    for snapshot in snapshots:
        rows = snapshot.table(MEDIA.name, columns=["media_id", "key"], filter=pc.field("media_id").isin(wanted))
        found.update(zip(rows.column("media_id").to_pylist(), rows.column("key").to_pylist(), strict=True))
    return found


def _check_ignored(catalog: TableCatalog, ignored: tuple[str, ...], names: Sequence[str]) -> None:
    known = {f.name for name in names for f in catalog[name].schema} if ignored else set()
    keys = {column for name in names for column in catalog[name].key}
    for column in ignored:
        if column in keys:
            raise ConfigError(f"cannot ignore key column {column!r}", hint="keys are what rows are matched by")
        if column not in known:
            # Columns added by schema evolution are fine to name, but a typo would silently ignore nothing.
            raise ConfigError(
                f"no table has a column {column!r} in its base schema",
                hint="name a column such as run_id, partition or registered_at",
            )


class _Side:
    """The rows of one snapshot's table that are in files the other snapshot does not reference."""

    def __init__(self, snapshot: Snapshot, name: str, files: list[str]) -> None:
        self.schema = snapshot.schema(name)
        paths = [uri.removeprefix("s3://") for uri in files]
        self._dataset = ds.dataset(paths, schema=self.schema, format="parquet", filesystem=snapshot.location.fs)

    def read(self, columns: list[str]) -> pa.Table:
        """The columns, file by file in a fixed order, so that row ``i`` is the same row on every read."""
        present = [c for c in columns if c in self.schema.names]
        parts = [f.to_table(schema=self.schema, columns=present) for f in self._dataset.get_fragments()]
        table = pa.concat_tables(parts) if parts else self.schema.empty_table().select(present)
        return table

    def column(self, name: str, data_type: pa.DataType, rows: pa.Array) -> pa.Array:
        """Column ``name`` at ``rows``; all nulls of ``data_type`` where this side's schema lacks it."""
        if name not in self.schema.names:
            return pa.nulls(len(rows), data_type)
        return self.read([name]).column(0).take(rows).combine_chunks()


def _diff_table(name: str, snap_a: Snapshot, snap_b: Snapshot, ignored: set[str], sample_size: int) -> TableDiff:
    key = snap_a.catalog[name].key
    version_a, version_b = snap_a.version_of(name), snap_b.version_of(name)
    if snap_a.table_token(name) == snap_b.table_token(name):
        return TableDiff(name, key, version_a, version_b, read=False)
    files_a, files_b = snap_a.file_uris(name), snap_b.file_uris(name)
    shared = set(files_a) & set(files_b)
    side_a = _Side(snap_a, name, [f for f in files_a if f not in shared])
    side_b = _Side(snap_b, name, [f for f in files_b if f not in shared])

    keys_a = _with_row_numbers(side_a.read(list(key)), _ROW_A)
    keys_b = _with_row_numbers(side_b.read(list(key)), _ROW_B)
    joined = keys_a.join(keys_b, keys=list(key), join_type="full outer", coalesce_keys=True)
    in_a, in_b = _to_bool(joined[_ROW_A].is_valid()), _to_bool(joined[_ROW_B].is_valid())
    matched = joined.filter(pa.array(in_a & in_b))
    rows_a, rows_b = matched[_ROW_A].combine_chunks(), matched[_ROW_B].combine_chunks()

    same = np.ones(matched.num_rows, dtype=bool)
    changed_columns: dict[str, int] = {}
    if matched.num_rows:
        types = {f.name: f.type for f in side_a.schema} | {f.name: f.type for f in side_b.schema}
        for column, data_type in types.items():
            if column in key or column in ignored:
                continue
            # One column at a time: memory holds two columns of the rewritten rows, not two tables.
            equal = same_values(side_a.column(column, data_type, rows_a), side_b.column(column, data_type, rows_b))
            if not equal.all():
                changed_columns[column] = int((~equal).sum())
            same &= equal

    key_columns = joined.select(list(key))
    changed_keys = matched.select(list(key)).filter(pa.array(~same))
    return TableDiff(
        table=name,
        key=key,
        version_a=version_a,
        version_b=version_b,
        added=int((in_b & ~in_a).sum()),
        changed=changed_keys.num_rows,
        removed=int((in_a & ~in_b).sum()),
        rewritten_unchanged=int(same.sum()),
        changed_columns=dict(sorted(changed_columns.items())),
        added_keys=_sample(key_columns.filter(pa.array(in_b & ~in_a)), key, sample_size),
        changed_keys=_sample(changed_keys, key, sample_size),
        removed_keys=_sample(key_columns.filter(pa.array(in_a & ~in_b)), key, sample_size),
        read=True,
    )


def _with_row_numbers(table: pa.Table, column: str) -> pa.Table:
    return table.append_column(column, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _to_bool(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _sample(keys: pa.Table, key: tuple[str, ...], size: int) -> list[dict[str, Any]]:
    """The first ``size`` keys in key order (stable across runs, unlike join output order)."""
    if size <= 0 or keys.num_rows == 0:
        return []
    order = pc.sort_indices(keys, sort_keys=[(column, "ascending") for column in key])
    return keys.take(order[:size]).to_pylist()
