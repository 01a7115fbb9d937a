"""Removing rows from the lake's history, not only from its latest snapshot: the generic primitives an
erasure (``mm_platform.erasure``) is made of.

A publish that removes rows hides them from every later snapshot; older snapshots, tombstoned and
orphaned files, Delta logs (their file statistics), table-state records and stage manifests still hold
them. These functions expire history, delete the data files holding given values, vacuum and purge what
the retained versions do not need, and drop stage manifests. Which tables, columns and values, and what
else outside the tables must go (``_batches/``, ``_indexes/``), is the caller's to say.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from mm_platform.errors import MMPlatformError
from mm_platform.lake.files import delta_dataset, table_file_paths
from mm_platform.lake.maintenance import purge_log
from mm_platform.lake.operations import Erase
from mm_platform.lake.publish_log import VACUUMED, LogEntry, LogState
from mm_platform.lake.stage import STAGES_DIR, load_stage
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_state import prune_states

if TYPE_CHECKING:
    from mm_platform.lake.lake import Lake

__all__ = [
    "TablePurge",
    "drop_stage_manifests",
    "expire_below",
    "matching_rows",
    "purge_table",
    "read_json_or_none",
    "table_at_version",
]


@dataclass
class TablePurge:
    """What ``purge_table`` did to one table."""

    deleted: set[str] = field(default_factory=set)
    """Data files holding a matching row, deleted whatever their age (table-relative paths)."""
    pending: list[str] = field(default_factory=list)
    """``table/path`` of files with matching rows that a kept version or an open publish still uses."""
    rows: list[pa.Table] = field(default_factory=list)
    """The matching rows of the deleted files (the columns asked for): what else may name them."""
    vacuumed: int = 0
    """Other files of expired versions, deleted by Delta vacuum."""
    log_files: int = 0
    """Delta log files (commits, checkpoints) before the oldest kept version."""


def expire_below(lake: Lake, state: LogState, horizon: int, message: str) -> LogState:
    """Make every snapshot below ``horizon`` unreadable (a ``vacuumed`` event); returns the new log state."""
    if horizon <= state.vacuum_horizon():
        return state
    entry = LogEntry(event=VACUUMED, kind=Erase.kind, row_counts={"expired_below_seq": horizon}, message=message)
    while (appended := lake.log.try_append(entry, state)) is None:
        state = lake.log.load()
    return appended


def purge_table(
    lake: Lake,
    name: str,
    retained: Sequence[LogEntry],
    *,
    column: str | None,
    values: pa.Array,
    collect: Sequence[str] = (),
) -> TablePurge:
    """Keep only what the ``retained`` snapshots and the latest version of table ``name`` need.

    Deletes every data file holding a row whose ``column`` is in ``values`` (unless in use: then pending),
    then vacuums the expired versions' tombstones (retention 0, never a staging publish's files) and purges
    the Delta log and table-state records below the oldest kept version. ``column=None``: nothing is
    matched, only history is dropped.
    """
    location = lake.location
    dt = DeltaTable(location.uri(name), storage_options=dict(location.storage_options))
    # Kept: the versions retained snapshots pin (0 where one predates the table) and the latest.
    kept = {dt.version()} | {int(e.table_versions.get(name, 0)) for e in retained}
    purge = TablePurge()
    if column is not None:
        _delete_matching_files(lake, name, kept, column, values, collect, purge)
    # Tombstoned files of the expired snapshots (never a staging publish's files: ``full=False``).
    removed = dt.vacuum(
        retention_hours=0, dry_run=False, enforce_retention_duration=False, keep_versions=sorted(kept), full=False
    )
    purge.vacuumed = len({path.removeprefix(location.uri(name) + "/") for path in removed} - purge.deleted)
    purge.log_files = purge_log(location, name, min(kept))
    prune_states(location, name, kept)
    return purge


def _delete_matching_files(
    lake: Lake, name: str, kept: set[int], column: str, values: pa.Array, collect: Sequence[str], purge: TablePurge
) -> None:
    """Delete every data file of ``name`` holding a matching row that no kept version or open publish uses.

    Any age: a tombstone of an expired snapshot, or an orphan of a stage that was never published (or went
    stale when the erasure removed the files it replaced).
    """
    location = lake.location
    in_use: set[str] | None = None
    for rel, info in location.files_under(name):
        if rel.startswith("_delta_log/") or not rel.endswith(".parquet"):
            continue
        rows = matching_rows(location, info.path, column, values, collect)
        if rows is None:
            continue
        if in_use is None:  # only a file with matching rows needs to know what is in use
            in_use = _files_in_use(lake, name, kept)
        if rel in in_use:
            purge.pending.append(f"{name}/{rel}")
            continue
        purge.rows.append(rows)
        location.delete_file(f"{name}/{rel}")
        purge.deleted.add(rel)


def _files_in_use(lake: Lake, name: str, kept: set[int]) -> set[str]:
    """Files of ``name`` that a kept version references or the publish in flight (if any) is adding."""
    options = dict(lake.location.storage_options)
    used: set[str] = set()
    for version in kept:
        used |= set(table_file_paths(DeltaTable(lake.location.uri(name), version=version, storage_options=options)))
    intent = lake.state().open_intent()
    stage = load_stage(lake.location, intent.stage_id) if intent and intent.stage_id else None
    if stage is not None and name in stage.tables:
        used |= {a.path for a in stage.tables[name].adds}
    return used


def matching_rows(
    location: LakeLocation, path: str, column: str, values: pa.Array, collect: Sequence[str] = ()
) -> pa.Table | None:
    """The ``column`` and ``collect`` columns of the Parquet file's rows whose ``column`` is in ``values``,
    or None (footer statistics prune first; a file without the column matches nothing)."""
    with location.fs.open_input_file(path) as source:
        parquet = pq.ParquetFile(source)
        names = parquet.schema_arrow.names
        if column not in names:
            return None
        wanted = sorted(values.to_pylist())
        meta = parquet.metadata
        maybe = False
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            chunk = next(
                (
                    row_group.column(i)
                    for i in range(row_group.num_columns)
                    if row_group.column(i).path_in_schema == column
                ),
                None,
            )
            stats = None if chunk is None else chunk.statistics
            if stats is None or not stats.has_min_max or any(stats.min <= v <= stats.max for v in wanted):
                maybe = True
                break
        if not maybe:
            return None
        rows = parquet.read(columns=[column, *(c for c in collect if c in names)])
    mask = pc.is_in(rows[column], value_set=values)
    return rows.filter(mask) if pc.any(mask).as_py() else None


def table_at_version(lake: Lake, name: str, version: int | None, columns: Sequence[str]) -> pa.Table | None:
    """Table ``name`` at a Delta version, even one no snapshot pins any more; None once its log is purged."""
    options = dict(lake.location.storage_options)
    try:
        dt = DeltaTable(lake.location.uri(name), version=version, storage_options=options)
    except (TableNotFoundError, DeltaError):
        return None
    return delta_dataset(lake.location, dt).to_table(columns=list(columns))  # type: ignore[attr-defined]


def drop_stage_manifests(lake: Lake, mentions: Callable[[Any], bool]) -> int:
    """Delete the stage manifests (``_stages``: their statistics name rows) for which ``mentions`` is true.

    Files that are not JSON documents (a write in progress) are left alone.
    """
    return len(remove_json_files(lake.location, STAGES_DIR, mentions))


def remove_json_files(location: LakeLocation, folder: str, doomed: Callable[[Any], bool]) -> list[str]:
    """Delete the JSON documents under ``folder`` for which ``doomed`` is true; returns their paths."""
    removed: list[str] = []
    for path, doc in json_documents(location, folder):
        if doomed(doc):
            location.delete_file(path)
            removed.append(path)
    return removed


def json_documents(location: LakeLocation, folder: str) -> Iterable[tuple[str, Any]]:
    """``(path, document)`` for every readable ``.json`` file under ``folder``."""
    for rel, _ in list(location.files_under(folder)):
        path = f"{folder}/{rel}"
        doc = read_json_or_none(location, path) if rel.endswith(".json") else None
        if doc is not None:
            yield path, doc


def read_json_or_none(location: LakeLocation, rel_path: str) -> Any:
    try:
        return location.read_json(rel_path)
    except (ValueError, TypeError, MMPlatformError):
        return None
