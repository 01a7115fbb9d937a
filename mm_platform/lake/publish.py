"""Write–audit–publish across tables (the protocol is described in the README's "Architecture" section).

1. stage: rows become invisible Parquet files + a manifest (``stage.py``);
2. audit: checks on the staged rows; a failure publishes nothing and is logged as ``rejected``;
3. intent: a compare-and-swap append to ``_publish_log`` claims the next sequence number;
4. apply: each table commits its files with an app transaction (``mm_platform.publish``, seq), checked
   first, committed with compare-and-swap, so applying twice is a no-op;
5. published: one more log append pins every table's new version — the single publish point.

A dead intent is rolled forward by the next publisher before it claims a sequence number of its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from deltalake import DeltaTable

from mm_platform.errors import (
    AuditFailedError,
    MMPlatformError,
    PublishConflictError,
    StaleStageError,
)
from mm_platform.lake import faults
from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult, run_checks
from mm_platform.lake.audit_trail import current_audit, merged
from mm_platform.lake.catalog import TableCatalog
from mm_platform.lake.handles import LatestTables
from mm_platform.lake.operations import Compact, Restore, Write
from mm_platform.lake.publish_events import append_terminal, append_unordered
from mm_platform.lake.publish_log import ABORTED, INTENT, PUBLISHED, REJECTED, LogEntry, LogState, PublishLog
from mm_platform.lake.snapshot import Snapshot, select_snapshot
from mm_platform.lake.stage import Stage, TableWrite, file_actions, fingerprint, load_stage, replaced_rows_in
from mm_platform.lake.stage_writer import StageWriter
from mm_platform.lake.staged import PublishResult, StagedPartition, StagedRows
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_commit import APP_ID, backoff, commit_table
from mm_platform.lake.table_state import record_files, record_state
from mm_platform.log import get_logger, kv

RETRY_BUDGET_S = 120.0
# Past this many small files in a table, the publish that got it there compacts it (in a publish of its
# own): a table's open cost follows its file count, and many small publishes must not slow every reader.
AUTO_COMPACT_FILES = 64
SMALL_FILE_BYTES = 32 * 1024 * 1024
log = get_logger("mm_platform.lake.publish")


class Publisher:
    """Runs the protocol for one lake."""

    def __init__(
        self, location: LakeLocation, catalog: TableCatalog, *, auto_compact_files: int | None = AUTO_COMPACT_FILES
    ) -> None:
        self.location = location
        self.catalog = catalog
        self.log = PublishLog(location)
        self.tables = LatestTables(location)
        self.auto_compact_files = auto_compact_files
        self.stage_id_prefix = ""
        """Namespaces this publisher's stage ids (a branch's: the same rows staged on main are another stage)."""
        self._small_files: dict[str, int] = {}
        """Small files per table as of this publisher's last apply (what auto-compaction looks at)."""

    # --- stage & audit -------------------------------------------------------------------------------

    def stage(
        self,
        partition: str,
        writes: Mapping[str, TableWrite],
        *,
        run_id: str = "",
        code_version: str = "",
        stage_id: str | None = None,
    ) -> StagedPartition:
        """Write the partition's files invisibly; reuse an existing stage with the same id."""
        stage_id = stage_id or fingerprint(partition, writes)
        existing = load_stage(self.location, stage_id)
        if existing is None:
            writer = self.stage_writer(partition, run_id=run_id, code_version=code_version, stage_id=stage_id)
            for name in sorted(writes):
                writer.write(name, writes[name].rows, writes[name].replace)
            existing = writer.finish()
        return StagedPartition(existing, StagedRows(self.location, existing))

    def staged(self, stage: Stage) -> StagedPartition:
        """A stage with lazy access to its rows, for an audit."""
        return StagedPartition(stage, StagedRows(self.location, stage))

    def stage_writer(
        self,
        partition: str,
        *,
        operation: Write | None = None,
        run_id: str = "",
        code_version: str = "",
        stage_id: str | None = None,
        message: str = "",
    ) -> StageWriter:
        """For partitions too large for memory: write chunks, then ``finish()`` and publish the stage."""
        return StageWriter(
            self.location, self.catalog, partition, operation=operation, run_id=run_id, code_version=code_version,
            stage_id=None if stage_id is None else self.namespaced(stage_id), tables=self.tables, message=message,
            id_prefix=self.stage_id_prefix,
        )  # fmt: skip

    def namespaced(self, stage_id: str) -> str:
        """The id a stage built by hand gets in this publisher's log: ``stage_id`` with the prefix (once)."""
        prefix = self.stage_id_prefix
        return stage_id if stage_id.startswith(prefix) else prefix + stage_id

    def audit(
        self, staged: StagedPartition, checks: Sequence[AuditCheck], *, raise_on_failure: bool = True
    ) -> list[CheckResult]:
        """Run the checks; on failure record a ``rejected`` event and raise (or return the results)."""
        if not checks:
            faults.fault_point("after_audit")
            return []
        state = self.log.load()
        context = AuditContext(partition=staged.stage.partition, staged=staged.rows, base=self.base_snapshot(state))
        results = run_checks(context, checks)
        failures = [r for r in results if not r.passed]
        if failures:
            entry = LogEntry(
                event=REJECTED,
                kind=staged.stage.kind,
                partition=staged.stage.partition,
                stage_id=staged.stage.stage_id,
                row_counts=staged.stage.row_counts(),
                checks=[r.to_dict() for r in results],
                message="; ".join(f"{r.name}{f' on {r.table}' if r.table else ''}: {r.detail}" for r in failures),
                run_id=staged.stage.run_id,
                code_version=staged.stage.code_version,
                audit=merged(current_audit().to_dict(), staged.stage.audit),
            )
            append_unordered(self.log, entry)
            if not raise_on_failure:
                return results
            raise AuditFailedError(
                f"partition {staged.stage.partition}: {len(failures)} audit check(s) failed — {entry.message}",
                partition=staged.stage.partition,
                failures=[r.to_dict() for r in failures],
            )
        faults.fault_point("after_audit")
        return results

    def base_snapshot(self, state: LogState) -> Snapshot:
        """The snapshot readers see now (what an audit compares staged rows with)."""
        return select_snapshot(self.location, self.catalog, state)

    # --- publish ---------------------------------------------------------------------------------------

    def publish(self, stage: Stage, checks: Sequence[CheckResult] = ()) -> PublishResult:
        """Publish an audited stage; idempotent, and safe against concurrent publishers and crashes."""
        deadline = time.monotonic() + RETRY_BUDGET_S
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            state = self.log.load()
            done = self.published_entry(state, stage.stage_id)
            if done is not None:
                return PublishResult.of(done, noop=True)
            intent = state.open_intent()
            if intent is not None:
                finished = self._finish(intent)
                if intent.stage_id == stage.stage_id:
                    return self._compacted_after(stage, PublishResult.of(finished))
                continue
            base_versions = self._check_fresh(stage)
            seq = state.next_seq()
            intent_entry = LogEntry(
                event=INTENT,
                kind=stage.kind,
                publish_seq=seq,
                partition=stage.partition,
                stage_id=stage.stage_id,
                table_versions=base_versions,
                row_counts=stage.row_counts(),
                checks=[c.to_dict() for c in checks],
                run_id=stage.run_id,
                code_version=stage.code_version,
                message=stage.message or current_audit().message or None,
                audit=merged(current_audit().to_dict(), stage.audit),
            )
            if self.log.try_append(intent_entry, state) is None:
                backoff(attempt)
                continue
            log.info("intent %s", kv(seq=seq, partition=stage.partition, stage=stage.stage_id))
            faults.fault_point("after_intent")
            return self._compacted_after(stage, PublishResult.of(self._finish(intent_entry, stage)))
        raise PublishConflictError(
            f"partition {stage.partition}: could not claim the publish log within {RETRY_BUDGET_S:.0f} s",
            hint="other publishers kept winning; run the publish again",
        )

    def _compacted_after(self, stage: Stage, result: PublishResult) -> PublishResult:
        """Compact the tables this publish left crowded with small files; never fails the publish itself."""
        if self.auto_compact_files is None or isinstance(stage.operation, Compact):
            return result
        crowded = [name for name in sorted(stage.tables) if self._small_files.get(name, 0) >= self.auto_compact_files]
        if not crowded:
            return result
        from mm_platform.lake.maintenance import plan_compaction

        try:
            plan = plan_compaction(
                self.location, crowded, small_file_bytes=SMALL_FILE_BYTES, min_files=2, handles=self.tables
            )
            if plan is not None:
                self.publish(plan)
                for name in plan.tables:  # readers load the compact state from one small checkpoint
                    self.tables.latest(name).create_checkpoint()
        except MMPlatformError as exc:  # another publisher compacted or changed the table first
            log.warning("auto-compaction skipped %s", kv(tables=crowded, reason=str(exc)))
        return result

    def recover(self) -> LogEntry | None:
        """Roll forward an intent whose publisher died; returns its published entry, if there was one."""
        state = self.log.load()
        intent = state.open_intent()
        return None if intent is None else self._finish(intent)

    def published_entry(self, state: LogState, stage_id: str) -> LogEntry | None:
        """The ``published`` event of this stage, unless a rollback has undone it since."""
        entry = state.find(PUBLISHED, stage_id=stage_id)
        if entry is None:
            return None
        # A rollback past this publish undoes it; publishing the same stage again is then real work.
        later_rollbacks = [e for e in state.published() if e.kind == Restore.kind and e.log_version > entry.log_version]
        return None if later_rollbacks else entry

    def _finish(self, intent: LogEntry, stage: Stage | None = None) -> LogEntry:
        """Apply every table of the intent's stage and append its ``published`` event."""
        assert intent.publish_seq is not None and intent.stage_id is not None
        seq = intent.publish_seq
        stage = stage or load_stage(self.location, intent.stage_id)
        if stage is None:
            return self._abort(intent, reason=f"stage manifest {intent.stage_id} is missing")
        versions: dict[str, int] = {}
        committed = [name for name in stage.table_names() if stage.commits_to(name)]
        for name in stage.table_names():  # one left alone is pinned as it is (no one else commits under an intent)
            left = name not in committed
            versions[name] = self.tables.latest(name).version() if left else self._apply_table(name, stage, seq)
            faults.fault_point(f"after_apply:{name}")
        published = append_terminal(self.log, intent, PUBLISHED, versions)
        self.tables.refresh_later(committed)  # off this thread: the caller goes on meanwhile
        return published

    def _apply_table(self, name: str, stage: Stage, seq: int) -> int:
        """Commit the stage's files of one table (at most once per publish); returns the version it pins.

        The version's file list is recorded for readers (no Delta log replay when they open it).
        """
        version, files = commit_table(self.tables, name, stage, seq)
        if files is not None:
            sizes = record_files(self.location, name, version, *files)
        else:  # a restore or a roll-forward: read what the version holds
            dt = self.tables.latest(name)
            if dt.version() != version:
                return version  # moved on already (cannot happen under an open intent): readers use Delta
            sizes = record_state(self.location, name, dt)
        self._small_files[name] = sum(1 for size in sizes if size < SMALL_FILE_BYTES)
        return version

    def _abort(self, intent: LogEntry, reason: str) -> LogEntry:
        """Undo what an unrecoverable intent applied (restore to its base versions) and close it."""
        options = dict(self.location.storage_options)
        for name, base in intent.table_versions.items():
            dt = DeltaTable(self.location.uri(name), storage_options=options)
            if dt.version() != base and (dt.transaction_version(APP_ID) or -1) >= (intent.publish_seq or 0):
                dt.restore(base)
        log.warning("aborted %s", kv(seq=intent.publish_seq, reason=reason))
        return append_terminal(self.log, LogEntry(**{**intent.__dict__, "message": reason}), ABORTED, {})

    def append_unordered(self, entry: LogEntry) -> None:
        """Append an event that claims no sequence number (a rejection), retrying lost races."""
        append_unordered(self.log, entry)

    def _check_fresh(self, stage: Stage) -> dict[str, int]:
        """Refuse a stage whose replaced rows changed since it was built (another publish touched them).

        Returns the current version of every table the stage touches (the intent's base versions).
        """
        versions: dict[str, int] = {}
        for name in stage.table_names():
            dt = self.tables.latest(name)
            versions[name] = dt.version()
            staged = stage.tables.get(name)
            if staged is None or dt.version() == staged.base_version:
                continue
            removes, _ = replaced_rows_in(self.location, name, file_actions(dt), staged.replace, survivors=False)
            if {r.path for r in removes} != {r.path for r in staged.removes}:
                raise StaleStageError(
                    f"table {name}, partition {stage.partition}: rows this stage replaces changed since it "
                    f"was staged (table version {staged.base_version} → {dt.version()})",
                    hint="stage the partition again",
                )
        return versions
