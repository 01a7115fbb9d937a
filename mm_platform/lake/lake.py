"""The lake: one object to publish into, read snapshots from, roll back and maintain."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from mm_platform.errors import ConfigError, LakeNotFoundError
from mm_platform.lake.audit import AuditCheck, CheckResult
from mm_platform.lake.maintenance import CompactionReport, VacuumReport, plan_compaction, vacuum
from mm_platform.lake.publish import Publisher, PublishResult, StagedPartition
from mm_platform.lake.publish_log import LogState
from mm_platform.lake.schemas import DATA_TABLES
from mm_platform.lake.snapshot import Snapshot, latest_snapshot, select_snapshot
from mm_platform.lake.stage import Stage, TableWrite, fingerprint
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.ticket import Redemption, StageTicket, issue_ticket, redeem_ticket

# A checkpoint every 10 commits keeps log replay short: opening a table reads one checkpoint and at most
# 9 JSON commits, however many publishes the lake has seen (delta-rs writes them after each commit).
# Statistics of every column are exposed, not only the first 32: the lineage columns (`partition`, `run_id`)
# come last in wide tables such as `metadata`, and replacing a partition prunes files by them.
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10", "delta.dataSkippingNumIndexedCols": "-1"}


class Lake:
    """A lake of Delta tables whose multi-table publishes are atomic for readers."""

    def __init__(self, location: LakeLocation) -> None:
        self.location = location
        self.publisher = Publisher(location)
        self.log = self.publisher.log  # one cached view of the log for reads and publishes

    @classmethod
    def open(
        cls, uri: str, env: Mapping[str, str] | None = None, *, create: bool = True, branch: str | None = None
    ) -> Lake:
        """Open (and by default create) the lake at a local path or ``s3://bucket/prefix``.

        With ``branch`` (not ``main``), the lake object reads and publishes on that branch.
        """
        lake = cls(LakeLocation.from_uri(uri, env))
        if not create and not lake.exists():
            raise LakeNotFoundError(f"no lake at {lake.location.root}", hint="publish something, or check --lake")
        lake.ensure_tables()  # tables added by newer versions appear (empty) in older lakes
        return lake if not branch or branch == "main" else lake.branch(branch)

    @property
    def branch_name(self) -> str:
        return "main"

    def branch(self, name: str) -> Lake:
        """The lake as branch ``name`` sees it: reads and publishes there, isolated from main."""
        from mm_platform.lake.branch import BranchLake

        return self.main() if name == "main" else BranchLake(self.location, name)

    def main(self) -> Lake:
        return self

    def exists(self) -> bool:
        return self._table_exists(self.log.name)

    def ensure_tables(self) -> None:
        """Create any missing table (idempotent, safe to race). A stat per table: opening stays cheap."""
        options = dict(self.location.storage_options)
        for spec in DATA_TABLES.values():
            if not self._table_exists(spec.name):
                self._create_racing(
                    spec.name,
                    lambda spec=spec: DeltaTable.create(  # type: ignore[misc]
                        self.location.uri(spec.name),
                        schema=spec.schema,
                        mode="ignore",
                        storage_options=options,
                        configuration=TABLE_CONFIGURATION,
                    ),
                )
        if not self._table_exists(self.log.name):
            self._create_racing(self.log.name, self.log.create)

    def _create_racing(self, name: str, create: Callable[[], object]) -> None:
        """Create a table; losing the race to another process creating it at the same moment is success."""
        try:
            create()
        except CommitFailedError:
            if not self._table_exists(name):
                raise

    def _table_exists(self, name: str) -> bool:
        return self.location.exists(f"{name}/_delta_log/00000000000000000000.json")

    # --- reading ---------------------------------------------------------------------------------------

    def state(self) -> LogState:
        return self.log.load()

    def snapshot(self, seq: int | None = None, as_of: datetime | None = None) -> Snapshot:
        """The latest published snapshot, or one by sequence number or time."""
        if seq is None and as_of is None:
            return self._view(latest_snapshot(self.location, self.log.head()))  # one commit read, not the log
        return self._view(select_snapshot(self.location, self.log.load(), seq=seq, as_of=as_of))

    def _view(self, snapshot: Snapshot) -> Snapshot:
        """How this lake reads a snapshot of its log (a branch reads its own file lists)."""
        return snapshot

    def snapshots(self) -> list[Snapshot]:
        state = self.log.load()
        return [
            self._view(select_snapshot(self.location, state, seq=e.publish_seq))
            for e in state.published()
            if (e.publish_seq or 0) >= state.vacuum_horizon()
        ]

    # --- writing ---------------------------------------------------------------------------------------

    def stage(
        self,
        partition: str,
        writes: Mapping[str, TableWrite],
        *,
        run_id: str = "",
        code_version: str = "",
        stage_id: str | None = None,
    ) -> StagedPartition:
        return self.publisher.stage(partition, writes, run_id=run_id, code_version=code_version, stage_id=stage_id)

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
        already = self.publisher._published_entry(self.log.load(), stage_id)
        if already is not None:
            return self.publisher._result(already, noop=True)
        staged = self.stage(partition, writes, run_id=run_id, code_version=code_version, stage_id=stage_id)
        results = self.publisher.audit(staged, checks)
        return self.publisher.publish(staged.stage, results)

    def publish_stage(self, stage: Stage) -> PublishResult:
        return self.publisher.publish(stage)

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
        results = self.publisher.audit(staged, checks, raise_on_failure=False)
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

    def rollback(self, seq: int, *, run_id: str = "", reason: str = "") -> PublishResult:
        """Publish a new snapshot whose tables equal snapshot ``seq``'s (history is not rewritten)."""
        state = self.log.load()
        erasures = [e.publish_seq or 0 for e in state.published() if e.kind == "erase"]
        if erasures and seq < max(erasures):
            raise ConfigError(
                f"cannot roll back to snapshot {seq}: erasure publish {max(erasures)} came after it",
                hint="erased objects must not come back; roll back to a snapshot at or after the erasure",
            )
        target = self.snapshot(seq=seq)
        # The erasure audit trail is never rolled back.
        restore = {name: target.version_of(name) for name in DATA_TABLES if name != "erasures"}
        stage = Stage(
            stage_id=self.publisher.namespaced(f"rollback-{seq}-{self.log.load().next_seq()}"),
            partition=f"rollback:{seq}",
            kind="rollback",
            restore_versions=restore,
            run_id=run_id,
            message=reason or f"rollback to snapshot {seq}",
        )
        return self.publisher.publish(stage)

    def recover(self) -> int | None:
        """Roll forward a publish whose process died after its intent; returns its seq."""
        entry = self.publisher.recover()
        return None if entry is None else entry.publish_seq

    def vacuum(
        self, *, keep_last: int | None = None, min_age_hours: float = 1.0, dry_run: bool = False
    ) -> VacuumReport:
        return vacuum(self.location, keep_last=keep_last, min_age_hours=min_age_hours, dry_run=dry_run)

    def compact(self, *, small_file_bytes: int = 32 * 1024 * 1024, min_files: int = 8) -> CompactionReport:
        """Rewrite small files into large ones in one publish (rows unchanged); readers see either layout."""
        before = {name: len(self.snapshot().file_uris(name)) for name in DATA_TABLES}
        stage = plan_compaction(self.location, small_file_bytes=small_file_bytes, min_files=min_files)
        seq = None if stage is None else self.publisher.publish(stage).seq
        after = {name: len(self.snapshot().file_uris(name)) for name in DATA_TABLES}
        return CompactionReport(files_before=before, files_after=after, publish_seq=seq)

    def status(self) -> dict[str, Any]:
        state = self.log.load()
        latest = select_snapshot(self.location, state)
        intent = state.open_intent()
        rows = {name: latest.delta_table(name).count() for name in DATA_TABLES}
        rejected = [e for e in state.entries if e.event == "rejected"]
        return {
            "lake": self.location.root,
            "snapshot": latest.to_dict(),
            "rows": rows,
            "snapshots": len(state.published()),
            "open_intent": None if intent is None else {"seq": intent.publish_seq, "partition": intent.partition},
            "last_rejected": None
            if not rejected
            else {
                "partition": rejected[-1].partition,
                "reason": rejected[-1].message,
                "at": rejected[-1].created_at.isoformat(),
                "failing_rows": [
                    {"check": check.get("name"), **row}
                    for check in rejected[-1].checks or []
                    if not check.get("passed")
                    for row in check.get("failing_rows") or []
                ],
            },
        }
