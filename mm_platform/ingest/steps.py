"""The two steps of a batch as the orchestrator runs them: stage + audit, then publish.

Between them the stage is invisible; a pointer (``_batches/<id>.stage.json``) tells the publish step which
stage the audit passed, so the publish step can run in another process or another run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mm_platform.errors import AuditFailedError, ConfigError, StaleStageError
from mm_platform.ingest.batches import BATCHES_DIR, BatchManifest, load_manifest
from mm_platform.ingest.ledger import published_marker
from mm_platform.ingest.process import BatchProcessor, BatchReport
from mm_platform.lake import AuditCheck, CheckResult, Lake, PublishResult
from mm_platform.lake.stage import load_stage
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


def _pointer(batch_id: str) -> str:
    return f"{BATCHES_DIR}/{batch_id}.stage.json"


def stage_batch(
    lake: Lake,
    processor: BatchProcessor,
    source_for: Callable[[str], Source],
    batch_id: str,
    run_id: str,
    checks: Sequence[AuditCheck],
) -> StagedBatch:
    """Process the batch into a stage and audit it; a failed audit is recorded in the publish log."""
    manifest = load_manifest(lake.location, batch_id)
    if manifest.kind == "erasure":
        report = processor.stage_erasure(manifest.deleted, batch_id, run_id)
    else:
        report = processor.stage(source_for(manifest.source), manifest.objects, batch_id, run_id)
    assert report.stage is not None
    results = lake.publisher.audit(lake.publisher.staged(report.stage), checks, raise_on_failure=False)
    passed = all(r.passed for r in results)
    lake.location.write_json(
        _pointer(batch_id), {"stage_id": report.stage.stage_id, "run_id": run_id, "passed": passed}
    )
    return StagedBatch(manifest, report, results)


RESTAGE_ATTEMPTS = 3


def publish_batch(lake: Lake, batch_id: str, restage: Callable[[], StagedBatch] | None = None) -> PublishResult:
    """Publish the stage that the batch's audit passed.

    When another publish replaced the same rows meanwhile (a concurrent ingest of the same objects), the
    stage is stale; ``restage`` builds and audits it again against the new tables (cheap: the published
    results are reused), and that stage is published instead.
    """
    try:
        return _publish_pointed(lake, batch_id)
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
                return _publish_pointed(lake, batch_id)
            except StaleStageError as again:
                stale = again
        raise stale


def _publish_pointed(lake: Lake, batch_id: str) -> PublishResult:
    pointer = lake.location.read_json(_pointer(batch_id))
    if pointer is None:
        raise ConfigError(f"batch {batch_id} has not been staged", hint="materialize its staged assets first")
    if not pointer["passed"]:
        raise AuditFailedError(
            f"batch {batch_id}: its audit failed; nothing is published", partition=batch_id, failures=[]
        )
    stage = load_stage(lake.location, pointer["stage_id"])
    if stage is None:
        raise ConfigError(f"batch {batch_id}: stage {pointer['stage_id']} is gone", hint="stage the batch again")
    result = lake.publish_stage(stage)
    # Discovery frees the batch's keys once this marker exists (mm_platform.ingest.ledger).
    lake.location.write_json(published_marker(batch_id), {"seq": result.seq, "stage_id": stage.stage_id})
    return result
