"""Merge a branch into its parent: a three-way merge per table by its keys, applied in ONE publish.

Base = the branch's fork snapshot (or the branch state its last merge took). For each table, the rows the
branch changed since the base and the rows the target changed since the base are found from the files that
differ (files shared by two versions hold the same rows, so only unshared files are read). A key changed on
one side only takes that side's value; changed identically on both, nothing is done; changed differently
(one side may have deleted it) it is a conflict: the merge is refused and lists them, or ``prefer`` picks.

The winning rows are committed to the target as the branch's own files where a file holds only winning rows
(zero copy: the file already lies in the table's folder), or rewritten otherwise; target files holding a
replaced key are removed (their other rows rewritten). The stage passes the audit gate and publishes through
the same protocol as any other publish, so a crash at any step leaves the pre- or post-merge snapshot, and a
re-run (same stage id) converges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.errors import MMPlatformError
from mm_platform.lake import faults
from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult
from mm_platform.lake.audit_trail import current_audit
from mm_platform.lake.branch_files import file_add, main_files
from mm_platform.lake.branch_publish import BranchSnapshot
from mm_platform.lake.branch_store import MAIN, now_iso
from mm_platform.lake.files import FileAdd, FileRemove, write_parquet_files
from mm_platform.lake.lake import BranchLake, Lake
from mm_platform.lake.merge_changes import Side, changes, joined_keys, read_files, rel_paths, same_rows
from mm_platform.lake.operations import Erase, Merge
from mm_platform.lake.publish_log import REJECTED, LogEntry
from mm_platform.lake.snapshot import Snapshot
from mm_platform.lake.stage import Stage, StagedTable, conform, load_stage, save_stage, schema_to_ipc
from mm_platform.lake.staged import PublishResult
from mm_platform.log import get_logger, kv

log = get_logger("mm_platform.lake.merge")
PREFER = ("source", "target")
_SHOWN_CONFLICTS = 20


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


@dataclass(frozen=True)
class MergeResult:
    """The outcome of ``merge_branch``."""

    source: str
    into: str
    source_seq: int
    base_seq: int
    """The source branch's snapshot the merge compared with (0: its fork)."""
    publish: PublishResult | None
    """None when there was nothing to merge."""
    tables: dict[str, TableMerge] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    """Conflicts resolved by ``prefer`` (a refused merge raises :class:`MergeConflictError`)."""
    prefer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "into": self.into,
            "source_seq": self.source_seq,
            "base_seq": self.base_seq,
            "publish_seq": None if self.publish is None else self.publish.seq,
            "noop": self.publish is None or self.publish.noop,
            "tables": {name: t.__dict__ for name, t in self.tables.items()},
            "conflicts": [c.to_dict() for c in self.conflicts],
            "prefer": self.prefer,
        }


class MergeConflictError(MMPlatformError):
    """Both sides changed the same keys differently; nothing was published."""

    def __init__(self, message: str, *, conflicts: list[Conflict], hint: str) -> None:
        super().__init__(message, hint=hint)
        self.conflicts = conflicts


# --- the merge ---------------------------------------------------------------------------------------


@dataclass
class _Plan:
    tables: dict[str, StagedTable]
    summary: dict[str, TableMerge]
    conflicts: list[Conflict]


def merge_branch(
    lake: Lake,
    source: str,
    *,
    into: str | None = None,
    message: str = "",
    prefer: str | None = None,
    checks: Sequence[AuditCheck] = (),
) -> MergeResult:
    """Merge branch ``source`` into ``into`` (default: the branch's parent) in one audited publish."""
    if prefer is not None and prefer not in PREFER:
        raise MMPlatformError(f"--prefer must be source or target, not {prefer!r}", hint="--prefer source|target")
    branch = lake.main().branch(source)
    assert isinstance(branch, BranchLake)
    record = branch.record
    into = into or record.parent
    target_lake = lake.main().branch(into)
    source_snap = branch.snapshot()
    base_snap = branch.snapshot(seq=record.merge_base_seq)
    target_snap = target_lake.snapshot()
    if source_snap.seq == record.merge_base_seq:
        return MergeResult(source, into, source_snap.seq, record.merge_base_seq, None, prefer=prefer)
    tag = f"{source}-{source_snap.seq}-{into}-{target_snap.seq}-{prefer or 'none'}"
    stage_id = target_lake.publisher.namespaced(f"merge-{hashlib.sha256(tag.encode()).hexdigest()[:20]}")
    merge_info = {
        "source": source,
        "source_seq": source_snap.seq,
        "base_seq": record.merge_base_seq,
        "fork_seq": record.fork_seq,
        "into": into,
        "prefer": prefer,
    }
    stage = load_stage(lake.location, stage_id)
    if stage is None:
        plan = _plan(base_snap, source_snap, target_snap, target_lake, prefer, stage_id)
        if plan.conflicts and prefer is None:
            _refuse(target_lake, source, into, plan.conflicts, merge_info, message)
        shown = [c.to_dict() for c in plan.conflicts[:_SHOWN_CONFLICTS]]
        audit = {"merge": {**merge_info, "conflicts": len(plan.conflicts), "resolved": shown}}
        audit["merge"]["tables"] = {n: t.__dict__ for n, t in plan.summary.items()}
        stage = Stage(
            stage_id=stage_id,
            partition=f"merge:{source}",
            # A merge that brings erasures is an erase publish on the target: vacuum-erased then finds it.
            operation=Erase() if "erasures" in plan.tables else Merge(),
            tables=plan.tables,
            message=message or current_audit().message or f"merge {source} into {into}",
            audit=audit,
        )
        if plan.tables:
            save_stage(lake.location, stage)
        faults.fault_point("after_stage")
    summary = {n: TableMerge(**t) for n, t in stage.audit.get("merge", {}).get("tables", {}).items()}
    resolved = [
        Conflict(c["table"], c["key"], c["source"], c["target"])
        for c in stage.audit.get("merge", {}).get("resolved", [])
    ]
    published: PublishResult | None = None
    if stage.tables:
        staged = target_lake.staged(stage)
        results = target_lake.audit(staged, [_merged_keys_unique(stage, target_snap), *checks])
        published = target_lake.publish_stage(stage, results)
    _record_merge(branch, into, source_snap.seq, published)
    log.info("merged %s", kv(source=source, into=into, seq=None if published is None else published.seq))
    return MergeResult(source, into, source_snap.seq, record.merge_base_seq, published, summary, resolved, prefer)


def _record_merge(branch: BranchLake, into: str, source_seq: int, published: PublishResult | None) -> None:
    record = branch.store.record(refresh=True)
    if record.merge_base_seq >= source_seq:
        return  # a re-run after a crash found it recorded already
    entry = {
        "into": into,
        "source_seq": source_seq,
        "seq": None if published is None else published.seq,
        "at": now_iso(),
    }
    branch.store.save_record(replace(record, merge_base_seq=source_seq, merges=(*record.merges, entry)))


def _refuse(
    target: Lake, source: str, into: str, conflicts: list[Conflict], info: dict[str, Any], message: str
) -> None:
    shown = conflicts[:_SHOWN_CONFLICTS]
    entry = LogEntry(
        event=REJECTED,
        kind=Merge.kind,
        partition=f"merge:{source}",
        message=f"merge {source} into {into}: {len(conflicts)} conflict(s)",
        audit={
            **current_audit().to_dict(),
            **({"message": message} if message else {}),
            "merge": {**info, "conflicts": len(conflicts), "unresolved": [c.to_dict() for c in shown]},
        },
    )
    target.publisher.append_unordered(entry)
    lines = "\n".join(f"  {c.describe()}" for c in shown)
    more = f"\n  … and {len(conflicts) - len(shown)} more" if len(conflicts) > len(shown) else ""
    raise MergeConflictError(
        f"merge of {source} into {into} refused: {len(conflicts)} row(s) changed differently on both sides\n"
        f"{lines}{more}",
        conflicts=conflicts,
        hint="decide with --prefer source (the branch's rows) or --prefer target (keep what is there)",
    )


def _plan(base: Snapshot, source: Snapshot, target: Snapshot, target_lake: Lake, prefer: str | None, tag: str) -> _Plan:
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
    return _Plan(tables, summary, conflicts)


def _refuse_erased(name: str, rows: pa.Table, base: Snapshot, target: Snapshot) -> None:
    """Never bring back an object the target erased after the fork (the branch still holds its rows)."""
    if "media_id" not in rows.column_names or rows.num_rows == 0 or name == "erasures":
        return
    if base.table_token("erasures") == target.table_token("erasures"):
        return
    erased = target.table("erasures", columns=["media_id"]).column("media_id")
    hit = pc.unique(rows.column("media_id").filter(pc.is_in(rows.column("media_id"), value_set=erased)))
    if len(hit):
        raise MMPlatformError(
            f"merge refused: table {name} would bring back {len(hit)} object(s) erased on the target after the "
            f"branch forked (media_id {hit[0]}…)",
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


def _merged_keys_unique(stage: Stage, target: Snapshot) -> AuditCheck:
    """The audit every merge passes: after it, each touched table's keys are still unique.

    Kept target files hold unique keys already (the target snapshot is valid), so it suffices that the added
    files' keys are unique among themselves and appear in no kept file (a small set probed, not a full sort).
    """

    def merged_keys_unique(context: AuditContext) -> CheckResult:
        for name, staged in stage.tables.items():
            key = target.catalog.spec(name).key
            removed = {r.path for r in staged.removes}
            kept = [p for p in rel_paths(target, name) if p not in removed]
            added = joined_keys(read_files(target, name, [a.path for a in staged.adds], key), key)
            kept_keys = joined_keys(read_files(target, name, kept, key), key) if kept else pa.array([], pa.string())
            clashes = pc.unique(kept_keys.filter(pc.is_in(kept_keys, value_set=added)))
            duplicates = len(added) - pc.count_distinct(added).as_py() + len(clashes)
            if duplicates:
                sample = [{"key": str(k)} for k in clashes.to_pylist()[:5]]
                return CheckResult(
                    "merged_keys_unique", False, name, f"{duplicates} duplicate key(s) after the merge", sample
                )
        return CheckResult("merged_keys_unique", True, detail="keys unique in every merged table")

    return merged_keys_unique


def _short(row: dict[str, Any] | None) -> str:
    if row is None:
        return "(deleted)"
    parts = []
    for column, value in row.items():
        text = repr(value)
        parts.append(f"{column}={text if len(text) <= 60 else text[:57] + '...'}")
    return "{" + ", ".join(parts) + "}"


__all__ = ["MAIN", "Conflict", "MergeConflictError", "MergeResult", "TableMerge", "merge_branch"]
