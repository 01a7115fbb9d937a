"""A merge's plan: per table, the rows each side changed since the base, the conflicts between them, and
the staged files that apply the winners to the target (see ``merge`` for the whole protocol)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.errors import MMPlatformError
from mm_platform.lake.branch_files import file_add, main_files
from mm_platform.lake.branch_publish import BranchSnapshot
from mm_platform.lake.conform import conform
from mm_platform.lake.files import FileAdd, FileRemove, write_parquet_files
from mm_platform.lake.lake import Lake
from mm_platform.lake.merge_changes import Side, changes, joined_keys, read_files, same_rows
from mm_platform.lake.snapshot import Snapshot
from mm_platform.lake.stage import StagedTable, schema_to_ipc


@dataclass(frozen=True)
class Conflict:
    """A key both sides changed differently: the table, the key, and each side's row (None: deleted)."""

    table: str
    key: dict[str, Any]
    source: dict[str, Any] | None
    target: dict[str, Any] | None

    def differing(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Only the columns that differ (what a person needs to decide)."""
        if self.source is None or self.target is None:
            return self.source, self.target
        columns = [c for c in self.source if c not in self.key and self.source.get(c) != self.target.get(c)]
        return {c: self.source.get(c) for c in columns}, {c: self.target.get(c) for c in columns}

    def describe(self) -> str:
        source, target = self.differing()
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        return f"{self.table} [{key}]: source {_short(source)} | target {_short(target)}"

    def to_dict(self) -> dict[str, Any]:
        source, target = self.differing()
        return {"table": self.table, "key": self.key, "source": source, "target": target}


@dataclass(frozen=True)
class TableMerge:
    """What a merge did to one table."""

    table: str
    upserted: int
    deleted: int
    files_committed: int
    """Branch files committed to the target as they are (no copy)."""
    files_rewritten: int
    """Files written by the merge (winning rows mixed with others, or survivors of replaced target files)."""


@dataclass
class Plan:
    """What a merge will stage: per table, the files to commit and remove, and the conflicts found."""

    tables: dict[str, StagedTable]
    summary: dict[str, TableMerge]
    conflicts: list[Conflict]


def plan_merge(
    base: Snapshot, source: Snapshot, target: Snapshot, target_lake: Lake, prefer: str | None, tag: str
) -> Plan:
    """Every table the source changed since the base: its conflicts with the target, and its staged merge."""
    tables: dict[str, StagedTable] = {}
    summary: dict[str, TableMerge] = {}
    conflicts: list[Conflict] = []
    for name in target.catalog:
        if base.table_token(name) == source.table_token(name):
            continue
        key = target.catalog.spec(name).key
        ours, theirs = changes(base, source, name), changes(base, target, name)
        _refuse_erased(name, ours.rows, base, target)  # before conflicts: --prefer source must not undo an erasure
        both = pc.is_in(ours.all_keys, value_set=theirs.all_keys)
        win_up = np.ones(len(ours.keys), dtype=bool)
        win_del = np.ones(len(ours.deleted), dtype=bool)
        if pc.any(both).as_py():
            win_up, win_del, found = _resolve(name, key, ours, theirs, prefer)
            conflicts += found
        if not win_up.any() and not win_del.any():
            continue
        staged = _stage_table(name, source, target, target_lake, ours, win_up, win_del, tag)
        tables[name], summary[name] = staged
    return Plan(tables, summary, conflicts)


def _refuse_erased(name: str, rows: pa.Table, base: Snapshot, target: Snapshot) -> None:
    """Never bring back an object the target erased after the fork (the branch still holds its rows).

    Erased: a value of a retiring table's column (``TableSpec.retires``, the erasure audit's media ids)."""
    for spec in target.catalog.retiring():
        column = spec.retires
        assert column is not None
        if column not in rows.column_names or rows.num_rows == 0 or name == spec.name:
            continue
        if base.table_token(spec.name) == target.table_token(spec.name):
            continue
        erased = target.table(spec.name, columns=[column]).column(column)
        hit = pc.unique(rows.column(column).filter(pc.is_in(rows.column(column), value_set=erased)))
        if len(hit):
            raise MMPlatformError(
                f"merge refused: table {name} would bring back {len(hit)} object(s) erased on the target after "
                f"the branch forked ({column} {hit[0]}…)",
                hint="erase them on the branch too (mmp --branch NAME erase …), or delete the branch",
            )


def _resolve(
    name: str, key: Sequence[str], ours: Side, theirs: Side, prefer: str | None
) -> tuple[np.ndarray, np.ndarray, list[Conflict]]:
    """Which of our upserts and deletions win, and the conflicts found."""
    their_row = pc.index_in(ours.keys, value_set=theirs.keys)
    their_del = np.asarray(pc.is_in(ours.keys, value_set=theirs.deleted).to_numpy(zero_copy_only=False), bool)
    has_row = np.asarray(their_row.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    win_up = ~(has_row | their_del)
    conflicts: list[Conflict] = []
    if has_row.any():
        mine = ours.rows.filter(pa.array(has_row))
        other = theirs.rows.take(their_row.filter(pa.array(has_row)))
        same = same_rows(mine, other, key)
        for position, equal, left, right in zip(
            np.flatnonzero(has_row), same, mine.to_pylist(), other.to_pylist(), strict=True
        ):
            if equal:
                continue  # the same change on both sides: nothing to do
            conflicts.append(Conflict(name, {k: left[k] for k in key}, left, right))
            win_up[position] = prefer == "source"
    for position in np.flatnonzero(their_del):  # we changed a row they deleted
        left = ours.rows.slice(int(position), 1).to_pylist()[0]
        conflicts.append(Conflict(name, {k: left[k] for k in key}, left, None))
        win_up[position] = prefer == "source"
    # We deleted: a conflict when they changed it, nothing to do when they deleted it too.
    their_up_keys = theirs.keys
    gone_there = np.asarray(pc.is_in(ours.deleted, value_set=theirs.deleted).to_numpy(zero_copy_only=False), bool)
    changed_there = pc.index_in(ours.deleted, value_set=their_up_keys)
    changed = np.asarray(changed_there.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    win_del = ~(gone_there | changed)
    for position in np.flatnonzero(changed):
        right = theirs.rows.slice(int(changed_there[int(position)].as_py()), 1).to_pylist()[0]
        conflicts.append(Conflict(name, {k: right[k] for k in key}, None, right))
        win_del[position] = prefer == "source"
    return win_up, win_del, conflicts


def _stage_table(
    name: str,
    source: Snapshot,
    target: Snapshot,
    target_lake: Lake,
    ours: Side,
    win_up: np.ndarray,
    win_del: np.ndarray,
    tag: str,
) -> tuple[StagedTable, TableMerge]:
    spec = target.catalog.spec(name)
    up_keys = ours.keys.filter(pa.array(win_up))
    touched = pa.concat_arrays([up_keys, ours.deleted.filter(pa.array(win_del))])
    schema = target.schema(name)
    source_schema = source.schema(name)
    merged_schema = pa.schema([*schema, *[f.with_nullable(True) for f in source_schema if f.name not in schema.names]])
    adds: list[FileAdd] = []
    removes: list[FileRemove] = []
    committed = rewritten = 0
    file_tag = f"merge-{tag[-12:]}"
    # Target files holding a replaced key go; their other rows are written again.
    target_files = _files(target, name)
    sizes = dict(
        zip(target_files.column("path").to_pylist(), target_files.column("size_bytes").to_pylist(), strict=True)
    )
    for path in sizes:
        keys = joined_keys(read_files(target, name, [path], spec.key), spec.key)
        hit = pc.is_in(keys, value_set=touched)
        if not pc.any(hit).as_py():
            continue
        removes.append(FileRemove(path=path, size=sizes[path]))
        if pc.all(hit).as_py():
            continue
        rows = read_files(target, name, [path]).filter(pc.invert(hit))
        adds += write_parquet_files(target.location, name, conform(spec, merged_schema, rows, "merge")[0], file_tag)
        rewritten += 1
    # The branch's files with winning rows: committed where they lie when they hold nothing else.
    source_files = _files(source, name)
    target_paths = set(sizes)
    new_row_files: list[str] = []
    for row in source_files.to_pylist():
        if row["path"] in target_paths:
            continue
        keys = joined_keys(read_files(source, name, [row["path"]], spec.key), spec.key)
        wins = pc.is_in(keys, value_set=up_keys)
        if not pc.any(wins).as_py():
            continue
        if pc.all(wins).as_py() and row.get("stats"):
            adds.append(file_add(row))
            new_row_files.append(row["path"])
            committed += 1
            continue
        rows = read_files(source, name, [row["path"]]).filter(wins)
        written = write_parquet_files(target.location, name, conform(spec, merged_schema, rows, "merge")[0], file_tag)
        adds += written
        new_row_files += [a.path for a in written]
        rewritten += 1
    base_version = target_lake.publisher.tables.latest(name).version()
    staged = StagedTable(
        table=name,
        base_version=base_version,
        adds=tuple(adds),
        removes=tuple(removes),
        rows_added=len(up_keys),
        schema_ipc=schema_to_ipc(merged_schema),
        new_row_files=tuple(new_row_files),
    )
    return staged, TableMerge(name, len(up_keys), int(win_del.sum()), committed, rewritten)


def _files(snapshot: Snapshot, name: str) -> pa.Table:
    """The snapshot's files of ``name`` with size and statistics."""
    if isinstance(snapshot, BranchSnapshot):
        return snapshot.files(name)
    return main_files(snapshot.location, name, snapshot.version_of(name))[0]


def _short(row: dict[str, Any] | None) -> str:
    if row is None:
        return "(deleted)"
    parts = []
    for column, value in row.items():
        text = repr(value)
        parts.append(f"{column}={text if len(text) <= 60 else text[:57] + '...'}")
    return "{" + ", ".join(parts) + "}"
