"""The two steps of an annotation revision as an orchestrator runs them: stage + audit, then publish.

Between them the stage is invisible; the run's stage ticket (``mm_platform.lake.ticket``) tells the publish
step which stage its own run's audit passed, so the steps can run in different processes (as for ingest
batches), and a later run of the same set cannot swap its stage in under an earlier run's publish step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mm_platform.annotations.attach import ANNOTATE_VERSION, AttachResult, prepare_revision
from mm_platform.annotations.model import AttachOptions
from mm_platform.annotations.read import read_annotation_file
from mm_platform.lake import AuditCheck, CheckResult, Lake
from mm_platform.lake.ticket import Redemption
from mm_platform.sources import S3Settings

__all__ = ["StagedRevision", "no_change_checks", "publish_revision", "stage_revision"]


@dataclass(frozen=True)
class StagedRevision:
    """An audited, not yet published revision (or a no-op: the set is already at this file's revision)."""

    result: AttachResult
    checks: list[CheckResult]
    """The audit's results (none for a no-op)."""


def stage_revision(
    lake: Lake,
    location: str,
    options: AttachOptions,
    *,
    run_id: str,
    s3_settings: S3Settings | None = None,
    checks: Sequence[AuditCheck] | None = None,
) -> StagedRevision:
    """Read, match and validate the file, stage the revision and audit it (a failure is logged as rejected)."""
    from mm_platform.annotations.checks import annotation_checks

    file = read_annotation_file(location, s3_settings=s3_settings)
    lake.recover()
    base_seq = lake.published_seq()
    prepared = prepare_revision(lake.snapshot(), file, options, run_id=run_id)
    result = prepared.result
    extra = {"revision": result.revision}
    work = f"{result.file.uri}@{result.file.version}#{result.file.sha256}"  # one file version: one publish
    if result.noop:
        lake.ticket_nothing(options.set_name, run_id=run_id, base_seq=base_seq, work=work, extra=extra)
        return StagedRevision(result, [])
    staged = lake.stage(prepared.partition, prepared.writes, run_id=run_id, code_version=f"annotate={ANNOTATE_VERSION}")
    audit = annotation_checks() if checks is None else checks
    _, results = lake.audit_and_ticket(
        staged, audit, partition=options.set_name, run_id=run_id, base_seq=base_seq, work=work, extra=extra
    )
    return StagedRevision(result, results)


def publish_revision(lake: Lake, set_name: str, run_id: str) -> tuple[int, Redemption]:
    """Publish the stage this run's audit passed: (revision, what redeeming the run's ticket did)."""
    redemption = lake.redeem(set_name, run_id)
    return int(redemption.ticket.extra["revision"]), redemption


def no_change_checks(result: AttachResult, names: Sequence[str]) -> list[CheckResult]:
    """Passing results for a no-op revision (nothing was staged, so nothing could fail)."""
    detail = f"nothing staged: revision {result.revision} already holds this file"
    return [CheckResult(name=name, passed=True, detail=detail) for name in names]
