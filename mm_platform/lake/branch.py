"""Branches of the whole lake: create, delete, list, and resolve ``BRANCH@SEQ`` references.

A branch forks a snapshot with metadata only (no data file copied); its publishes run the protocol of
``branch_publish`` and never reach main's Delta logs. ``Lake.branch(name)`` opens one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mm_platform.errors import ConfigError
from mm_platform.lake.audit_trail import current_audit
from mm_platform.lake.branch_publish import BranchSnapshot
from mm_platform.lake.branch_store import MAIN, BranchRecord, BranchStore, check_name, list_branches, now_iso
from mm_platform.lake.lake import Lake
from mm_platform.lake.publish_log import PublishLog
from mm_platform.lake.snapshot import Snapshot
from mm_platform.lake.storage import LakeLocation
from mm_platform.log import get_logger, kv

log = get_logger("mm_platform.lake.branch")


# --- creating and deleting ------------------------------------------------------------------------------


def parse_ref(ref: str | None) -> tuple[str, int | None]:
    """``main``, ``exp``, ``exp@3`` or ``5`` (a main snapshot) → (branch, seq or None for its latest)."""
    if ref is None or ref == "":
        return MAIN, None
    if ref.isdigit():
        return MAIN, int(ref)
    name, _, seq = ref.partition("@")
    if seq and not seq.isdigit():
        raise ConfigError(f"invalid snapshot reference {ref!r}", hint="use BRANCH, BRANCH@SEQ or SEQ")
    return name or MAIN, int(seq) if seq else None


def resolve(lake: Lake, ref: str | None) -> Snapshot:
    """The snapshot a reference names (see :func:`parse_ref`)."""
    name, seq = parse_ref(ref)
    return lake.main().branch(name).snapshot(seq=seq)


def create_branch(lake: Lake, name: str, from_ref: str | None = None, *, message: str = "") -> BranchRecord:
    """Create branch ``name`` from a main snapshot or another branch: metadata only, no data file copied."""
    main = lake.main()
    store = BranchStore(main.location, check_name(name))
    if store.exists():
        raise ConfigError(f"branch {name!r} exists", hint="pick another name, or `mmp branch delete` it first")
    parent, _ = parse_ref(from_ref)
    fork = resolve(main, from_ref)
    if isinstance(fork, BranchSnapshot):
        parent_store = fork._store()
        fork_versions = dict(parent_store.record().fork_versions)
        for table in main.catalog:  # tables the parent branch changed: its small file list becomes our version 0
            if fork.table_token(table)[0] != "main":
                store.copy_version(parent_store, table, fork.version_of(table))
    else:
        fork_versions = {table: fork.version_of(table) for table in main.catalog}
    PublishLog(main.location, store.log_name).create()
    record = BranchRecord(
        name=name,
        parent=parent,
        fork_seq=fork.seq,
        fork_versions=fork_versions,
        created_at=now_iso(),
        actor=current_audit().actor,
        message=message or current_audit().message,
    )
    store.save_record(record)  # the branch exists from here on
    log.info("branch created %s", kv(branch=name, parent=parent, fork_seq=fork.seq))
    return record


def delete_branch(lake: Lake, name: str) -> None:
    """Delete a branch; its files go on the next vacuum (unless a merge committed them to main)."""
    store = BranchStore(lake.location, check_name(name))
    store.record()
    children = [r.name for r in _records(lake.location) if r.parent == name]
    if children:
        raise ConfigError(
            f"branch {name!r} has branches made from it: {', '.join(children)}",
            hint="delete those first (their version 0 is a copy, but merges go into their parent)",
        )
    store.delete()
    log.info("branch deleted %s", kv(branch=name))


def _records(location: LakeLocation) -> list[BranchRecord]:
    return list_branches(location)


def branch_heads(lake: Lake) -> list[Mapping[str, Any]]:
    """Every branch with its parent, fork and latest snapshot (for ``mmp branch list``)."""
    rows: list[Mapping[str, Any]] = []
    for record in _records(lake.location):
        head = lake.main().branch(record.name).snapshot()
        rows.append(
            {
                "name": record.name,
                "parent": record.parent,
                "fork_seq": record.fork_seq,
                "head_seq": head.seq,
                "merged_seq": record.merge_base_seq,
                "created_at": record.created_at,
                "actor": record.actor,
                "message": record.message,
            }
        )
    return rows
