"""The two steps of an annotation revision as an orchestrator runs them: stage + audit, then publish.

Between them the stage is invisible; a pointer (``_annotations/<set>.stage.json``) tells the publish step
which stage the audit passed, so the steps can run in different processes (as for ingest batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mm_platform.annotations.attach import ANNOTATE_VERSION, AttachResult, prepare_revision
from mm_platform.annotations.model import AttachOptions
from mm_platform.annotations.read import read_annotation_file
from mm_platform.errors import AuditFailedError, ConfigError
from mm_platform.lake import AuditCheck, CheckResult, Lake, PublishResult
from mm_platform.lake.stage import load_stage
from mm_platform.sources import S3Settings

__all__ = ["POINTERS_DIR", "StagedRevision", "no_change_checks", "publish_revision", "stage_revision"]

POINTERS_DIR = "_annotations"


@dataclass(frozen=True)
class StagedRevision:
    """An audited, not yet published revision (or a no-op: the set is already at this file's revision)."""

    result: AttachResult
    checks: list[CheckResult]
    """The audit's results (none for a no-op)."""


def _pointer(set_name: str) -> str:
    return f"{POINTERS_DIR}/{set_name}.stage.json"


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
    prepared = prepare_revision(lake.snapshot(), file, options, run_id=run_id)
    result = prepared.result
    if result.noop:
        lake.location.write_json(_pointer(options.set_name), {"noop": True, "revision": result.revision})
        return StagedRevision(result, [])
    staged = lake.stage(prepared.partition, prepared.writes, run_id=run_id, code_version=f"annotate={ANNOTATE_VERSION}")
    audit = annotation_checks() if checks is None else checks
    results = lake.publisher.audit(staged, audit, raise_on_failure=False)
    passed = all(r.passed for r in results)
    lake.location.write_json(
        _pointer(options.set_name),
        {"stage_id": staged.stage.stage_id, "revision": result.revision, "passed": passed, "run_id": run_id},
    )
    return StagedRevision(result, results)


def publish_revision(lake: Lake, set_name: str) -> tuple[int, PublishResult | None]:
    """Publish the stage the set's audit passed: (revision, publish result; ``None`` for a no-op)."""
    pointer = lake.location.read_json(_pointer(set_name))
    if pointer is None:
        raise ConfigError(f"annotation set {set_name} has nothing staged", hint="materialize its staged asset first")
    revision = int(pointer["revision"])
    if pointer.get("noop"):
        return revision, None
    if not pointer["passed"]:
        raise AuditFailedError(
            f"annotation set {set_name}: the audit of revision {revision} failed; nothing is published",
            partition=set_name,
            failures=[],
        )
    stage = load_stage(lake.location, pointer["stage_id"])
    if stage is None:
        raise ConfigError(f"annotation set {set_name}: stage {pointer['stage_id']} is gone", hint="stage it again")
    return revision, lake.publish_stage(stage)


def no_change_checks(result: AttachResult, names: Sequence[str]) -> list[CheckResult]:
    """Passing results for a no-op revision (nothing was staged, so nothing could fail)."""
    detail = f"nothing staged: revision {result.revision} already holds this file"
    return [CheckResult(name=name, passed=True, detail=detail) for name in names]
