"""Erasure, second half: make erased objects unreadable through the lake's history (``mmp vacuum-erased``).

What ``erase`` published hides the object from every snapshot from then on; this expires the older
snapshots and deletes or purges every file that could still name it, then verifies (the steps are listed
in ``mm_platform.erasure.erase``'s docstring). The lake does the generic part (``mm_platform.lake.expunge``:
expire, delete data files by media id, vacuum, purge logs and stage manifests); this module decides what an
erased media id means and adds the domain's own files (``cleanup``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.erasure.cleanup import drop_index_caches, scrub_batch_manifests
from mm_platform.erasure.erase import ERASE_KIND, ErasedRowsPresentError, ensure_audit_table
from mm_platform.erasure.table import ERASURES
from mm_platform.erasure.verify import Tokens, mentions, scan
from mm_platform.errors import MMPlatformError
from mm_platform.lake import Lake, Snapshot
from mm_platform.lake.branch_store import list_branches
from mm_platform.lake.expunge import drop_stage_manifests, expire_below, purge_table, table_at_version
from mm_platform.lake.operations import Restore
from mm_platform.lake.publish_log import LogState
from mm_platform.log import get_logger, kv

__all__ = ["ErasureVacuumPlan", "ErasureVacuumReport", "plan_vacuum_erased", "vacuum_erased"]

log = get_logger("mm_platform.erasure")

_TOKEN_COLUMNS = ("uri", "content_sha256", "source_content_sha256")


def _refuse_branches_with_erased(lake: Lake, erase_seqs: Sequence[int]) -> None:
    """A branch forked before an erasure still reads the erased rows (and main's files holding them)."""
    last = max(erase_seqs, default=0)
    holding = [r.name for r in list_branches(lake.location) if r.parent == "main" and r.fork_seq < last]
    if holding:
        raise MMPlatformError(
            f"branch(es) {', '.join(holding)} were created before erasure publish {last} and still hold the "
            "erased objects",
            hint="delete them (`mmp branch delete NAME`), then run vacuum-erased again",
        )


@dataclass(frozen=True)
class ErasureVacuumReport:
    """What ``vacuum_erased`` removed, and anything still holding an erased object."""

    erased_media: int
    expired_below_seq: int
    """Snapshots below this seq can no longer be read."""
    data_files_deleted: dict[str, int] = field(default_factory=dict)
    """Per table: files that held erased rows, deleted whatever their age."""
    vacuumed_files: dict[str, int] = field(default_factory=dict)
    """Per table: other files of expired snapshots, deleted by Delta vacuum."""
    log_files_deleted: dict[str, int] = field(default_factory=dict)
    """Per table: Delta log files (commits, checkpoints) before the oldest retained version."""
    manifests_deleted: int = 0
    manifests_rewritten: int = 0
    index_files_deleted: int = 0
    pending: list[str] = field(default_factory=list)
    """Files with erased rows that a retained snapshot or an in-flight publish still uses (not deleted)."""
    leftovers: list[str] = field(default_factory=list)
    """``path: what`` for every remaining file that still names an erased media id, URI or content hash."""

    @property
    def complete(self) -> bool:
        return not self.pending and not self.leftovers

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "complete": self.complete}


@dataclass(frozen=True)
class ErasureVacuumPlan:
    """What ``vacuum_erased`` would do now, computed without changing anything."""

    erased_media: int
    expire_below_seq: int
    """Snapshots below this seq would become unreadable (history before the latest erasure)."""
    expiring: list[int] = field(default_factory=list)
    """The readable snapshots that would expire."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan_vacuum_erased(lake: Lake) -> ErasureVacuumPlan:
    """Which snapshots ``vacuum_erased`` would expire (every one before the latest erasure publish)."""
    state = lake.state()
    erased, erase_seqs = _erased_media(lake, state, lake.snapshot())
    horizon = max([*erase_seqs, state.vacuum_horizon()]) if erased else state.vacuum_horizon()
    readable = [e.publish_seq or 0 for e in state.published() if (e.publish_seq or 0) >= state.vacuum_horizon()]
    return ErasureVacuumPlan(len(erased), horizon, [seq for seq in readable if seq < horizon])


def vacuum_erased(lake: Lake, *, verify: bool = True) -> ErasureVacuumReport:
    """Make erased objects unreadable through history: expire, delete, purge logs and manifests, verify."""
    location = lake.location
    ensure_audit_table(location)
    lake.recover()  # an intent left open is finished first, as every publisher does
    state = lake.state()
    latest = lake.snapshot()
    erased, erase_seqs = _erased_media(lake, state, latest)
    if not erased:
        return ErasureVacuumReport(erased_media=0, expired_below_seq=state.vacuum_horizon())
    _refuse_resurrected(latest, erased)
    _refuse_branches_with_erased(lake, erase_seqs)
    horizon = max([*erase_seqs, state.vacuum_horizon()])
    message = f"snapshots before the erasure of {len(erased)} media expired"
    state = expire_below(lake, state, horizon, message)
    retained = [e for e in state.published() if (e.publish_seq or 0) >= horizon]
    tokens = Tokens(media_ids=set(erased))
    values = pa.array(sorted(erased), pa.string())
    data_files: dict[str, int] = {}
    vacuumed: dict[str, int] = {}
    log_files: dict[str, int] = {}
    pending: list[str] = []
    for name in lake.catalog:
        # The audit table keeps the media id by design: only its history is dropped.
        column = None if name == ERASURES.name else "media_id"
        purge = purge_table(lake, name, retained, column=column, values=values, collect=_TOKEN_COLUMNS)
        for rows in purge.rows:
            tokens.collect(rows)
        pending += purge.pending
        data_files[name] = len(purge.deleted)
        vacuumed[name] = purge.vacuumed
        log_files[name] = purge.log_files
    tokens.hashes -= _hashes_in_use(latest, tokens.hashes)
    named = [t for _, t in tokens.named()]
    stages_deleted = drop_stage_manifests(lake, lambda doc: mentions(doc, named))
    batches_deleted, batches_rewritten = scrub_batch_manifests(location, tokens)
    report = ErasureVacuumReport(
        erased_media=len(erased),
        expired_below_seq=horizon,
        data_files_deleted=data_files,
        vacuumed_files=vacuumed,
        log_files_deleted=log_files,
        manifests_deleted=stages_deleted + batches_deleted,
        manifests_rewritten=batches_rewritten,
        index_files_deleted=drop_index_caches(location, erased),
        pending=pending,
        leftovers=scan(location, tokens) if verify else [],
    )
    log.info(
        "vacuumed erasures %s",
        kv(media=len(erased), expired_below=horizon, files=sum(data_files.values()),
           log_files=sum(log_files.values()), complete=report.complete),
    )  # fmt: skip
    return report


def _erased_media(lake: Lake, state: LogState, latest: Snapshot) -> tuple[set[str], list[int]]:
    """Every erased media id and the seqs of the erase publishes.

    ``erasures`` is append-only, so its latest snapshot lists every erasure — unless a rollback restored
    it to before one; then each erase publish's own version is read too.
    """
    entries = [e for e in state.published() if e.kind == ERASE_KIND and e.publish_seq is not None]
    seqs = [int(e.publish_seq) for e in entries if e.publish_seq is not None]
    if not entries:
        return set(), []
    ids = set(latest.table(ERASURES.name, columns=["media_id"])["media_id"].to_pylist())
    first = min(seqs)
    if any(e.kind == Restore.kind and (e.publish_seq or 0) > first for e in state.published()):
        for entry in entries:
            version = entry.table_versions.get(ERASURES.name)
            rows = table_at_version(lake, ERASURES.name, version, ["media_id"])
            if rows is not None:  # None: purged by an earlier vacuum_erased, which handled it
                ids |= set(rows["media_id"].to_pylist())
    return ids, seqs


def _refuse_resurrected(latest: Snapshot, erased: set[str]) -> None:
    values = pa.array(sorted(erased), pa.string())
    back: dict[str, set[str]] = {}
    for name in latest.catalog:
        if name == ERASURES.name or "media_id" not in latest.schema(name).names:
            continue
        rows = latest.table(name, columns=["media_id"], filter=pc.field("media_id").isin(values))
        for media_id in rows["media_id"].to_pylist():
            back.setdefault(media_id, set()).add(name)
    if back:
        raise ErasedRowsPresentError(
            f"{len(back)} erased media have rows in snapshot {latest.seq} again "
            f"({', '.join(sorted(set().union(*back.values())))}); nothing was deleted",
            hint="a rollback past the erasure, or a new ingest of the object, brought them back: "
            f"run `mmp erase {' '.join(sorted(back))} --reason ...` again, then vacuum",
        )


def _hashes_in_use(latest: Snapshot, hashes: set[str]) -> set[str]:
    """Content hashes that media still in the lake share (identical bytes under another URI keep theirs)."""
    if not hashes:
        return set()
    values = pa.array(sorted(hashes), pa.string())
    used: set[str] = set()
    for name in latest.catalog:
        names = latest.schema(name).names
        for column in ("content_sha256", "source_content_sha256"):
            if column in names:
                rows = latest.table(name, columns=[column], filter=pc.field(column).isin(values))
                used |= set(rows[column].to_pylist())
    return used
