"""The lake: one object to stage, audit and publish into, read snapshots from, roll back and maintain.

Everything outside ``lake/`` goes through :class:`Lake` (and the branch it opens); the publisher behind it
is the lake's own. The lake holds the tables of the catalog it is opened with (``mm_platform.catalog``
composes the platform's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mm_platform.errors import ConfigError, LakeNotFoundError
from mm_platform.lake.audit import AuditCheck, CheckResult
from mm_platform.lake.branch_publish import BranchPublisher, BranchSnapshot
from mm_platform.lake.branch_store import BranchRecord, BranchStore, check_name
from mm_platform.lake.catalog import TableCatalog
from mm_platform.lake.lake_status import branch_status, lake_status
from mm_platform.lake.maintenance import CompactionReport, VacuumReport, plan_compaction, vacuum
from mm_platform.lake.operations import Erase, Restore, Write
from mm_platform.lake.publish import Publisher
from mm_platform.lake.publish_log import LogState
from mm_platform.lake.snapshot import Snapshot, latest_snapshot, select_snapshot
from mm_platform.lake.stage import Stage, TableWrite, fingerprint
from mm_platform.lake.stage_writer import StageWriter
from mm_platform.lake.staged import PublishResult, StagedPartition
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_create import ensure_tables, table_exists
from mm_platform.lake.ticket import Redemption, StageTicket, issue_ticket, redeem_ticket


class Lake:
    """A lake of Delta tables whose multi-table publishes are atomic for readers."""

    def __init__(self, location: LakeLocation, catalog: TableCatalog) -> None:
        self.location = location
        self.catalog = catalog
        """The data tables this lake holds."""
        self.publisher = Publisher(location, catalog)
        self.log = self.publisher.log  # one cached view of the log for reads and publishes

    @classmethod
    def open(
        cls,
        uri: str,
        env: Mapping[str, str] | None = None,
        *,
        catalog: TableCatalog,
        create: bool = True,
        branch: str | None = None,
    ) -> Lake:
        """Open (and by default create) the lake at a local path or ``s3://bucket/prefix``.

        With ``branch`` (not ``main``), the lake object reads and publishes on that branch.
        """
        lake = cls(LakeLocation.from_uri(uri, env), catalog)
        if not create and not lake.exists():
            raise LakeNotFoundError(f"no lake at {lake.location.root}", hint="publish something, or check --lake")
        lake.ensure_tables()  # tables added by newer versions appear (empty) in older lakes
        return lake if not branch or branch == "main" else lake.branch(branch)

    @property
    def auto_compact_files(self) -> int | None:
        """Small files a publish may leave in a table before it compacts it in a publish of its own (None: never)."""
        return self.publisher.auto_compact_files

    @auto_compact_files.setter
    def auto_compact_files(self, files: int | None) -> None:
        self.publisher.auto_compact_files = files

    @property
    def branch_name(self) -> str:
        return "main"

    def branch(self, name: str) -> Lake:
        """The lake as branch ``name`` sees it: reads and publishes there, isolated from main."""
        return self.main() if name == "main" else BranchLake(self.main(), name)

    def main(self) -> Lake:
        return self

    def exists(self) -> bool:
        return table_exists(self.location, self.log.name)

    def ensure_tables(self) -> None:
        """Create any missing table (idempotent, safe to race). A stat per table: opening stays cheap."""
        ensure_tables(self.location, self.catalog.values(), self.log)

    # --- reading ---------------------------------------------------------------------------------------

    def state(self) -> LogState:
        return self.log.load()

    def snapshot(self, seq: int | None = None, as_of: datetime | None = None) -> Snapshot:
        """The latest published snapshot, or one by sequence number or time."""
        if seq is None and as_of is None:  # one commit read, not the log
            return self._view(latest_snapshot(self.location, self.catalog, self.log.head()))
        return self._view(select_snapshot(self.location, self.catalog, self.log.load(), seq=seq, as_of=as_of))

    def _view(self, snapshot: Snapshot) -> Snapshot:
        """How this lake reads a snapshot of its log (a branch reads its own file lists)."""
        return snapshot

    def snapshots(self) -> list[Snapshot]:
        state = self.log.load()
        return [
            self._view(select_snapshot(self.location, self.catalog, state, seq=e.publish_seq))
            for e in state.published()
            if (e.publish_seq or 0) >= state.vacuum_horizon()
        ]

    # --- writing: stage, audit, publish ---------------------------------------------------------------------

    def stage(
        self,
        partition: str,
        writes: Mapping[str, TableWrite],
        *,
        run_id: str = "",
        code_version: str = "",
        stage_id: str | None = None,
    ) -> StagedPartition:
        """Write the partition's rows invisibly (reusing a stage with the same id) for an audit and a publish."""
        return self.publisher.stage(partition, writes, run_id=run_id, code_version=code_version, stage_id=stage_id)

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
        """Stage a partition in chunks (bounded memory): ``write`` per table, then ``finish()`` the stage."""
        return self.publisher.stage_writer(
            partition, operation=operation, run_id=run_id, code_version=code_version, stage_id=stage_id,
            message=message,
        )  # fmt: skip

    def staged(self, stage: Stage) -> StagedPartition:
        """A finished stage with lazy access to its rows (what ``audit`` checks)."""
        return self.publisher.staged(stage)

    def audit(
        self, staged: StagedPartition, checks: Sequence[AuditCheck], *, raise_on_failure: bool = True
    ) -> list[CheckResult]:
        """Run the checks on the staged rows; a failure is logged as ``rejected`` and raises (or is returned)."""
        return self.publisher.audit(staged, checks, raise_on_failure=raise_on_failure)

    def publish_stage(self, stage: Stage, checks: Sequence[CheckResult] = ()) -> PublishResult:
        """Publish an audited stage (``checks``: its audit results, recorded with the publish); idempotent."""
        return self.publisher.publish(stage, checks)

    def publish(
        self,
        partition: str,
        writes: Mapping[str, TableWrite],
        *,
        checks: Sequence[AuditCheck] = (),
        run_id: str = "",
        code_version: str = "",
        stage_id: str | None = None,
    ) -> PublishResult:
        """Stage, audit and publish one partition across tables, atomically for readers."""
        stage_id = stage_id or fingerprint(partition, writes)
        already = self.publisher.published_entry(self.log.load(), stage_id)
        if already is not None:
            return PublishResult.of(already, noop=True)
        staged = self.stage(partition, writes, run_id=run_id, code_version=code_version, stage_id=stage_id)
        results = self.audit(staged, checks)
        return self.publish_stage(staged.stage, results)

    # --- the two-phase publish of an orchestrated run (stage ticket) ---------------------------------------

    def published_seq(self) -> int:
        """The latest published snapshot's seq (0 for a new lake): what a ticket's stage was built against."""
        latest = self.log.head().latest
        return 0 if latest is None else latest.publish_seq or 0

    def audit_and_ticket(
        self,
        staged: StagedPartition,
        checks: Sequence[AuditCheck],
        *,
        partition: str,
        run_id: str,
        base_seq: int,
        work: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[StageTicket, list[CheckResult]]:
        """Audit the stage (a failure is logged as rejected) and issue the run's ticket for ``partition``."""
        results = self.audit(staged, checks, raise_on_failure=False)
        ticket = issue_ticket(self.publisher, partition, run_id, base_seq, staged, results, work=work, extra=extra)
        return ticket, results

    def ticket_nothing(
        self,
        partition: str,
        *,
        run_id: str,
        base_seq: int,
        work: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> StageTicket:
        """Issue the run's ticket saying staging found nothing to publish."""
        return issue_ticket(self.publisher, partition, run_id, base_seq, None, (), work=work, extra=extra)

    def redeem(self, partition: str, run_id: str) -> Redemption:
        """Publish what this run's ticket names (only its own run's passed stage; see ``lake.ticket``)."""
        return redeem_ticket(self.publisher, partition, run_id)

    # --- history and maintenance ---------------------------------------------------------------------------

    def rollback(self, seq: int, *, run_id: str = "", reason: str = "") -> PublishResult:
        """Publish a new snapshot whose tables equal snapshot ``seq``'s (history is not rewritten)."""
        state = self.log.load()
        erasures = [e.publish_seq or 0 for e in state.published() if e.kind == Erase.kind]
        if erasures and seq < max(erasures):
            raise ConfigError(
                f"cannot roll back to snapshot {seq}: erasure publish {max(erasures)} came after it",
                hint="erased objects must not come back; roll back to a snapshot at or after the erasure",
            )
        target = self.snapshot(seq=seq)
        restore = {name: target.version_of(name) for name in self.catalog.restorable()}
        stage = Stage(
            stage_id=self.publisher.namespaced(f"rollback-{seq}-{self.log.load().next_seq()}"),
            partition=f"rollback:{seq}",
            operation=Restore(restore),
            run_id=run_id,
            message=reason or f"rollback to snapshot {seq}",
        )
        return self.publish_stage(stage)

    def recover(self) -> int | None:
        """Roll forward a publish whose process died after its intent; returns its seq."""
        entry = self.publisher.recover()
        return None if entry is None else entry.publish_seq

    def vacuum(
        self, *, keep_last: int | None = None, min_age_hours: float = 1.0, dry_run: bool = False
    ) -> VacuumReport:
        return vacuum(self.location, self.catalog, keep_last=keep_last, min_age_hours=min_age_hours, dry_run=dry_run)

    def compact(self, *, small_file_bytes: int = 32 * 1024 * 1024, min_files: int = 8) -> CompactionReport:
        """Rewrite small files into large ones in one publish (rows unchanged); readers see either layout."""
        before = {name: len(self.snapshot().file_uris(name)) for name in self.catalog}
        stage = plan_compaction(self.location, self.catalog, small_file_bytes=small_file_bytes, min_files=min_files)
        seq = None if stage is None else self.publish_stage(stage).seq
        after = {name: len(self.snapshot().file_uris(name)) for name in self.catalog}
        return CompactionReport(files_before=before, files_after=after, publish_seq=seq)

    def status(self) -> dict[str, Any]:
        state = self.log.load()
        return lake_status(self.location.root, select_snapshot(self.location, self.catalog, state), state)


class BranchLake(Lake):
    """The lake as one branch sees it: the same API as :class:`Lake`, isolated from main.

    Here, not in ``branch``: ``Lake.branch`` opens one, and ``branch`` builds on ``Lake``."""

    def __init__(self, main: Lake, name: str) -> None:
        self.location = main.location
        self.catalog = main.catalog
        self._main = main
        self.store = BranchStore(main.location, check_name(name))
        self.store.record()  # a clear error for a branch that does not exist
        self.publisher = BranchPublisher(main.location, main.catalog, self.store)
        self.log = self.publisher.log

    @property
    def branch_name(self) -> str:
        return self.store.name

    @property
    def record(self) -> BranchRecord:
        return self.store.record()

    def main(self) -> Lake:
        return self._main

    def ensure_tables(self) -> None:
        self._main.ensure_tables()

    def _view(self, snapshot: Snapshot) -> Snapshot:
        return BranchSnapshot.of(snapshot, self.store)

    def vacuum(self, **kwargs: Any) -> Any:
        return self._main.vacuum(**kwargs)  # one vacuum for the whole lake: it keeps every live branch

    def compact(self, **kwargs: Any) -> Any:
        raise ConfigError("compaction runs on main", hint="run `mmp compact` without --branch")

    def status(self) -> dict[str, Any]:
        state = self.log.load()
        latest = self._view(select_snapshot(self.location, self.catalog, state))
        return branch_status(self.location.root, latest, state, self.record)
