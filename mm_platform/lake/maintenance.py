"""Vacuum and compaction that never break a snapshot someone may still read."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
from deltalake import DeltaTable

from mm_platform.lake.files import FileRemove
from mm_platform.lake.handles import LatestTables
from mm_platform.lake.operations import Compact
from mm_platform.lake.publish_log import VACUUMED, LogEntry, PublishLog
from mm_platform.lake.stage import STAGES_DIR, Stage
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_state import prune_states
from mm_platform.log import get_logger, kv

log = get_logger("mm_platform.lake.maintenance")


@dataclass(frozen=True)
class VacuumReport:
    """What a vacuum removed and what it kept."""

    files_deleted: dict[str, int]
    retained_seqs: list[int]
    expired_below_seq: int
    dry_run: bool


def vacuum(
    location: LakeLocation,
    tables: Iterable[str],
    *,
    keep_last: int | None = None,
    min_age_hours: float = 1.0,
    dry_run: bool = False,
) -> VacuumReport:
    """Delete files no retained snapshot needs.

    Retained: every published snapshot (or the last ``keep_last``) plus each table's latest version. Files
    that no version references (abandoned stages) are deleted only once older than ``min_age_hours``, so a
    publish staging right now is never robbed of its files.
    """
    publish_log = PublishLog(location)
    state = publish_log.load()
    # Snapshots below the horizon are expired (e.g. by an erasure): their files are not kept.
    published = [e for e in state.published() if (e.publish_seq or 0) >= state.vacuum_horizon()]
    retained = published if keep_last is None else published[-keep_last:] if keep_last > 0 else []
    horizon = retained[0].publish_seq if retained and retained[0].publish_seq is not None else state.next_seq()
    expired_below = max(horizon if keep_last is not None else 0, state.vacuum_horizon())
    deleted: dict[str, int] = {}
    options = dict(location.storage_options)
    forks, branch_files = live_branch_needs(location)
    for name in tables:
        dt = DeltaTable(location.uri(name), storage_options=options)
        keep = sorted(
            {int(e.table_versions[name]) for e in retained if name in e.table_versions}
            | {dt.version()}
            | forks.get(name, set())  # the fork versions live branches read
        )
        protected = branch_files.get(name, set())
        removed = dt.vacuum(
            retention_hours=int(min_age_hours) if min_age_hours >= 1 else 0,
            dry_run=dry_run or bool(protected),  # with branches: we delete, minus the files they reference
            enforce_retention_duration=False,
            keep_versions=keep,
            full=True,
        )
        if protected:
            removed = [path for path in removed if path not in protected]
            if not dry_run:
                for path in removed:
                    location.delete_file(f"{name}/{path}")
        deleted[name] = len(removed)
        if not dry_run:
            prune_states(location, name, set(keep))
            if keep_last is not None:  # versions before the oldest retained snapshot are history nobody reads
                purge_log(location, name, min(keep))
        log.info("vacuum %s", kv(table=name, deleted=len(removed), kept_versions=len(keep), dry_run=dry_run))
    if not dry_run:
        _prune_stage_manifests(location, state)
        if expired_below > state.vacuum_horizon():
            entry = LogEntry(event=VACUUMED, kind="vacuum", row_counts={"expired_below_seq": expired_below})
            while publish_log.try_append(entry, state) is None:
                state = publish_log.load()
    return VacuumReport(
        files_deleted=deleted,
        retained_seqs=[e.publish_seq for e in retained if e.publish_seq is not None],
        expired_below_seq=expired_below,
        dry_run=dry_run,
    )


def live_branch_needs(location: LakeLocation) -> tuple[dict[str, set[int]], dict[str, set[str]]]:
    """Per table: main versions live branches forked from, and every file any branch version references.

    A branch's files are in no Delta log, so Delta's vacuum alone would take them; a deleted branch's record
    is gone, so its files are no longer listed here and the next vacuum frees them.
    """
    from mm_platform.lake.branch_store import BranchStore, list_branches

    forks: dict[str, set[int]] = {}
    files: dict[str, set[str]] = {}
    for record in list_branches(location):
        for table, version in record.fork_versions.items():
            forks.setdefault(table, set()).add(int(version))
        for table, paths in BranchStore(location, record.name).all_paths().items():
            files.setdefault(table, set()).update(paths)
    return forks, files


def _prune_stage_manifests(location: LakeLocation, state: object) -> None:
    """Manifests of published stages are history the log already holds; keep only open or recent ones."""
    from mm_platform.lake.publish_log import LogState

    assert isinstance(state, LogState)
    open_intent = state.open_intent()
    keep = {open_intent.stage_id} if open_intent else set()
    finished = {e.stage_id for e in state.entries if e.event in ("published", "aborted")}
    for info in location.list_files(STAGES_DIR):
        stage_id = info.base_name.removesuffix(".json")
        if stage_id in finished and stage_id not in keep:
            location.delete_file(f"{STAGES_DIR}/{info.base_name}")


@dataclass(frozen=True)
class CompactionReport:
    """Files rewritten per table by one compaction, and the publish that made it visible."""

    files_before: dict[str, int]
    files_after: dict[str, int]
    publish_seq: int | None


def plan_compaction(
    location: LakeLocation,
    tables: Iterable[str],
    *,
    small_file_bytes: int = 32 * 1024 * 1024,
    min_files: int = 8,
    handles: LatestTables | None = None,
) -> Stage | None:
    """A stage that rewrites each table's small files into few large ones (same rows), or None.

    Many publishes leave many small files; readers open every one. Compaction is published like any other
    change (one atomic publish), so a reader's snapshot never mixes compacted and uncompacted files.
    """
    from mm_platform.lake.files import read_parquet_file, write_parquet_files
    from mm_platform.lake.stage import StagedTable, save_stage, schema_to_ipc

    staged: dict[str, StagedTable] = {}
    handles = handles or LatestTables(location)
    tag = f"compact-{uuid.uuid4().hex[:12]}"
    for name in tables:
        dt = handles.latest(name)
        actions = pa.table(dt.get_add_actions(flatten=False)).select(["path", "size_bytes"]).to_pylist()
        small = [a for a in actions if a["size_bytes"] < small_file_bytes]
        if len(small) < min_files:
            continue
        schema = pa.schema(dt.schema().to_arrow())
        parts = [read_parquet_file(location, name, a["path"]) for a in small]
        rows = pa.concat_tables(
            [p.select(schema.names) if set(schema.names) <= set(p.column_names) else _widen(p, schema) for p in parts]
        )
        adds = write_parquet_files(location, name, rows, tag)
        staged[name] = StagedTable(
            table=name,
            base_version=dt.version(),
            adds=tuple(adds),
            removes=tuple(FileRemove(a["path"], a["size_bytes"]) for a in small),
            rows_added=0,
            schema_ipc=schema_to_ipc(schema),
        )
    if not staged:
        return None
    stage = Stage(
        stage_id=tag, partition="compaction", operation=Compact(), tables=staged, message="compact small files"
    )
    save_stage(location, stage)
    return stage


def _widen(part: pa.Table, schema: pa.Schema) -> pa.Table:
    """An older file lacks columns added later by schema evolution: they read as nulls."""
    columns = [part.column(f.name) if f.name in part.column_names else pa.nulls(part.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def purge_log(location: LakeLocation, name: str, oldest_kept: int) -> int:
    """Delete the table's Delta log before ``oldest_kept``, after checkpointing that version.

    The protocol lets log files before a checkpoint go (``cleanup_metadata`` does it after
    ``delta.logRetentionDuration``, 30 days by default, whatever snapshots still pin). Here the line is the
    oldest retained snapshot instead: a checkpoint is written at its version and everything before it is
    deleted, so the log stays short and no retained snapshot loses a version it pins. An erasure relies on
    it too: commit JSONs and checkpoints carry file statistics, which can name an erased row.
    """
    if oldest_kept <= 0:
        return 0
    folder = f"{name}/_delta_log"
    names = [rel for rel, _ in location.files_under(folder) if "/" not in rel]
    old = [rel for rel in names if (v := _log_version(rel)) is not None and v < oldest_kept]
    if not old:
        return 0
    if f"{oldest_kept:020d}.checkpoint.parquet" not in names:
        options = dict(location.storage_options)
        DeltaTable(location.uri(name), version=oldest_kept, storage_options=options).create_checkpoint()
    # Oldest first: while it runs, a commit file is only missing when every earlier one is (LatestTables
    # relies on it to tell a current handle from a cut log).
    for rel in sorted(old, key=lambda rel: (_log_version(rel) or 0, rel)):
        location.delete_file(f"{folder}/{rel}")
    return len(old)


def _log_version(file_name: str) -> int | None:
    head = file_name.split(".", 1)[0]
    return int(head) if len(head) == 20 and head.isdigit() else None
