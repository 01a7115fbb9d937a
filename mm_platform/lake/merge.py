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

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.errors import MMPlatformError
from mm_platform.lake import faults
from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult
from mm_platform.lake.audit_trail import current_audit
from mm_platform.lake.branch_store import MAIN, now_iso
from mm_platform.lake.lake import BranchLake, Lake
from mm_platform.lake.merge_changes import joined_keys, read_files, rel_paths
from mm_platform.lake.merge_plan import Conflict, TableMerge, plan_merge
from mm_platform.lake.operations import Erase, Merge
from mm_platform.lake.publish_log import REJECTED, LogEntry
from mm_platform.lake.snapshot import Snapshot
from mm_platform.lake.stage import Stage, load_stage, save_stage
from mm_platform.lake.staged import PublishResult
from mm_platform.log import get_logger, kv

log = get_logger("mm_platform.lake.merge")
PREFER = ("source", "target")
_SHOWN_CONFLICTS = 20


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
        plan = plan_merge(base_snap, source_snap, target_snap, target_lake, prefer, stage_id)
        if plan.conflicts and prefer is None:
            _refuse(target_lake, source, into, plan.conflicts, merge_info, message)
        shown = [c.to_dict() for c in plan.conflicts[:_SHOWN_CONFLICTS]]
        audit = {"merge": {**merge_info, "conflicts": len(plan.conflicts), "resolved": shown}}
        audit["merge"]["tables"] = {n: t.__dict__ for n, t in plan.summary.items()}
        stage = Stage(
            stage_id=stage_id,
            partition=f"merge:{source}",
            # A merge that brings erasures is an erase publish on the target: vacuum-erased then finds it.
            operation=Erase() if any(spec.name in plan.tables for spec in target_snap.catalog.retiring()) else Merge(),
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


__all__ = ["MAIN", "Conflict", "MergeConflictError", "MergeResult", "TableMerge", "merge_branch"]
