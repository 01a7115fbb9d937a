"""The two steps of a batch as the orchestrator runs them: stage + audit, then publish.

Between them the stage is invisible; the run's stage ticket (``mm_platform.lake.ticket``) tells the publish
step which stage its own run's audit passed, so the steps can run in different processes or on different
workers, and two runs of one batch never publish each other's stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mm_platform.errors import AuditFailedError, StaleStageError
from mm_platform.ingest.batches import ERASURE_BATCH, BatchManifest, load_manifest
from mm_platform.ingest.ledger import published_marker, rejected_marker
from mm_platform.ingest.process import BatchProcessor, BatchReport
from mm_platform.lake import AuditCheck, CheckResult, Lake, prepare_checks
from mm_platform.lake.ticket import Redemption
from mm_platform.log import get_logger, kv
from mm_platform.sources import Source

log = get_logger("mm_platform.ingest.steps")


@dataclass(frozen=True)
class StagedBatch:
    """A processed, audited, not yet published batch."""

    manifest: BatchManifest
    report: BatchReport
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def stage_batch(
    lake: Lake,
    processor: BatchProcessor,
    source_for: Callable[[str], Source],
    batch_id: str,
    run_id: str,
    checks: Sequence[AuditCheck],
) -> StagedBatch:
    """Process the batch into a stage, audit it and issue the run's ticket (a failed audit is logged)."""
    manifest = load_manifest(lake.location, batch_id)
    base_seq = lake.published_seq()
    prepare_checks(checks)
    if manifest.kind == ERASURE_BATCH:
        report = processor.stage_erasure(manifest.deleted, batch_id, run_id)
    else:
        report = processor.stage(source_for(manifest.source), manifest.objects, batch_id, run_id)
    assert report.stage is not None
    ticket, results = lake.audit_and_ticket(
        lake.staged(report.stage), checks, partition=batch_id, run_id=run_id, base_seq=base_seq
    )
    if not ticket.passed:  # discovery frees the batch's keys and reconciliation plans its objects again
        lake.location.write_json(rejected_marker(batch_id), {"run_id": run_id, "failures": list(ticket.failures)})
    return StagedBatch(manifest, report, results)


RESTAGE_ATTEMPTS = 3


def publish_batch(
    lake: Lake, batch_id: str, run_id: str, restage: Callable[[], StagedBatch] | None = None
) -> Redemption:
    """Publish the stage this run's audit passed (a no-op naming the winner if another run published the
    batch first).

    When another publish replaced the same rows meanwhile (a concurrent ingest of the same objects), the
    stage is stale; ``restage`` builds and audits it again against the new tables (cheap: the published
    results are reused) under a new ticket of this run, and that stage is published instead.
    """
    try:
        return _redeem(lake, batch_id, run_id)
    except StaleStageError as stale:
        if restage is None:
            raise
        for attempt in range(1, RESTAGE_ATTEMPTS + 1):
            log.info("restaging %s", kv(batch=batch_id, attempt=attempt, reason=stale.message))
            staged = restage()
            if not staged.passed:
                failed = [c.name for c in staged.checks if not c.passed]
                raise AuditFailedError(
                    f"batch {batch_id}: its audit failed when staged again ({', '.join(failed)}); nothing is published",
                    partition=batch_id,
                    failures=[c.to_dict() for c in staged.checks if not c.passed],
                ) from stale
            try:
                return _redeem(lake, batch_id, run_id)
            except StaleStageError as again:
                stale = again
        raise stale


def _redeem(lake: Lake, batch_id: str, run_id: str) -> Redemption:
    """Redeem the run's ticket; then mark the batch finished (discovery frees its keys: ingest.ledger)."""
    redemption = lake.redeem(batch_id, run_id)
    seq = redemption.result.seq if redemption.result is not None else None
    if seq is None and redemption.superseded_by is not None:
        seq = redemption.superseded_by.publish_seq
    lake.location.write_json(published_marker(batch_id), {"seq": seq, "run_id": run_id})
    return redemption
