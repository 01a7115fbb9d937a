"""Attach an annotation file as the next revision of a set: read → match → validate → stage → audit → publish.

A revision replaces its set's rows in ``annotations`` (a ``RowFilter`` on ``annotation_set``, so other sets and
the models' labels in ``derived`` are untouched), appends one row to ``annotation_sets`` and its rejected rows
to ``annotation_rejects`` — all three in one publish, so a reader sees the whole revision or the one before.

A row whose value did not change is carried into the new revision exactly as it was (its revision, file
version, row and run say when that value arrived); so the snapshot diff between two revisions lists exactly
the rows whose value changed. Attaching the same file again with the same outcome publishes nothing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.annotations.match import MediaIndex
from mm_platform.annotations.model import (
    AttachOptions,
    AttachResult,
    NothingAttachedError,
    RowProblem,
    RowsRejectedError,
)
from mm_platform.annotations.read import AnnotationFile, read_annotation_file
from mm_platform.annotations.revision_rows import (
    ANNOTATE_VERSION,
    annotation_row,
    annotations_schema,
    carry_forward,
    reject_rows,
    set_row,
)
from mm_platform.annotations.schema import ANNOTATION_REJECTS, ANNOTATION_SETS, ANNOTATIONS, VALUE_COLUMNS
from mm_platform.annotations.validate import ColumnPlan, plan_columns, validate_rows
from mm_platform.errors import StaleStageError
from mm_platform.lake import AuditCheck, Lake, RowFilter, Snapshot, TableWrite
from mm_platform.log import get_logger, kv
from mm_platform.sources import S3Settings

__all__ = [
    "ANNOTATE_VERSION",
    "AttachResult",
    "PreparedRevision",
    "attach_file",
    "latest_revision",
    "partition_for",
    "prepare_revision",
]

log = get_logger("mm_platform.annotations")

ATTEMPTS = 3


def partition_for(set_name: str, revision: int) -> str:
    """The publish's partition: the publish log and ``mmp snapshots`` name revisions by it."""
    return f"annotations:{set_name}:r{revision}"


@dataclass(frozen=True)
class PreparedRevision:
    """A revision ready to stage: its writes per table and the report (no writes when it is a no-op)."""

    result: AttachResult
    partition: str
    writes: Mapping[str, TableWrite] = field(default_factory=dict)


def attach_file(
    lake: Lake,
    location: str,
    options: AttachOptions,
    *,
    s3_settings: S3Settings | None = None,
    run_id: str = "",
    checks: Sequence[AuditCheck] | None = None,
) -> AttachResult:
    """Read the file at ``location`` and publish it as the next revision of ``options.set_name``."""
    from mm_platform.annotations.checks import annotation_checks

    file = read_annotation_file(location, s3_settings=s3_settings)
    lake.recover()  # a revision whose publisher died is finished before the next one is numbered
    for attempt in range(1, ATTEMPTS + 1):
        prepared = prepare_revision(lake.snapshot(), file, options, run_id=run_id)
        if prepared.result.noop:
            return prepared.result
        try:
            published = lake.publish(
                prepared.partition,
                prepared.writes,
                checks=annotation_checks() if checks is None else checks,
                run_id=run_id or prepared.partition,
                code_version=f"annotate={ANNOTATE_VERSION}",
            )
        except StaleStageError:
            if attempt == ATTEMPTS:
                raise
            continue  # another revision of the set landed meanwhile: number and diff against it
        log.info("attached %s", kv(set=options.set_name, revision=prepared.result.revision, seq=published.seq))
        return dataclasses.replace(prepared.result, seq=published.seq)
    raise AssertionError("unreachable")


def latest_revision(snapshot: Snapshot, set_name: str) -> dict[str, Any] | None:
    """The set's newest ``annotation_sets`` row in the snapshot, or None."""
    rows = snapshot.table(ANNOTATION_SETS.name, filter=pc.field("annotation_set") == set_name).to_pylist()
    return max(rows, key=lambda r: r["revision"]) if rows else None


def prepare_revision(
    snapshot: Snapshot, file: AnnotationFile, options: AttachOptions, *, run_id: str = ""
) -> PreparedRevision:
    """Match and validate ``file`` against ``snapshot`` and build the next revision's rows."""
    name = options.set_name
    previous = latest_revision(snapshot, name)
    vocabulary = _vocabulary(options, previous)
    plan = plan_columns(file, options, snapshot.schema(ANNOTATIONS.name))
    checked = validate_rows(file, plan, MediaIndex.from_snapshot(snapshot).lookup, vocabulary)
    rejects = tuple(checked.rejected)
    if not checked.accepted:
        raise NothingAttachedError(
            f"no row of {file.version.uri} could be attached to set {name!r} ({file.row_count} rows, "
            f"{_summary(rejects)}); nothing was published",
            problems=rejects,
            hint=_nothing_hint(plan, rejects),
        )
    if options.strict and rejects:
        raise RowsRejectedError(
            f"{len(rejects)} of {file.row_count} rows of {file.version.uri} were rejected ({_summary(rejects)}); "
            "--strict: nothing was published",
            problems=rejects,
        )
    revision = int(previous["revision"]) + 1 if previous else 1
    partition = partition_for(name, revision)
    run = run_id or partition
    now = datetime.now(UTC)
    fresh = [
        annotation_row(a, target, name, revision, file.version, plan, options.producer, run, partition, now)
        for a in checked.accepted
        for target in a.targets
    ]
    old = snapshot.table(ANNOTATIONS.name, filter=pc.field("annotation_set") == name).to_pylist()
    extras = [c for c in snapshot.schema(ANNOTATIONS.name).names if c not in ANNOTATIONS.schema.names]
    rows, counts = carry_forward(old, fresh, [*VALUE_COLUMNS, *dict.fromkeys([*extras, *plan.extras])])
    result = AttachResult(
        set_name=name,
        revision=revision,
        seq=None,
        noop=False,
        file=file.version,
        match_by=plan.match,
        key_column=file.original_names.get(plan.key, plan.key),
        id_column=None if plan.id is None else file.original_names.get(plan.id, plan.id),
        rows_in_file=file.row_count,
        rows_attached=len(checked.accepted),
        rows_rejected=len(rejects),
        annotations=len(rows),
        rejects=rejects,
        new_columns=plan.new_extras,
        vocabulary=None if vocabulary is None else tuple(vocabulary),
        **counts,
    )
    if previous is not None and _same_revision(snapshot, previous, result):
        return PreparedRevision(
            dataclasses.replace(result, revision=int(previous["revision"]), noop=True, seq=snapshot.seq), partition
        )
    schema = annotations_schema(snapshot.schema(ANNOTATIONS.name), plan)
    writes = {
        ANNOTATIONS.name: TableWrite(
            pa.Table.from_pylist(rows, schema=schema), (RowFilter("annotation_set", (name,)),)
        ),
        ANNOTATION_SETS.name: TableWrite(set_row(result, plan, run, partition, now, options.producer)),
    }
    if rejects:
        writes[ANNOTATION_REJECTS.name] = TableWrite(reject_rows(result, run, partition, options.producer))
    return PreparedRevision(result, partition, writes)


def _vocabulary(options: AttachOptions, previous: Mapping[str, Any] | None) -> list[str] | None:
    if options.vocabulary is not None:
        return sorted(set(options.vocabulary)) or None  # () drops the declaration
    declared = previous.get("vocabulary") if previous else None
    return list(declared) if declared else None


def _summary(rejects: Sequence[RowProblem]) -> str:
    counts = Counter(p.reason for p in rejects)
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "no rows"


def _nothing_hint(plan: ColumnPlan, rejects: Sequence[RowProblem]) -> str:
    if rejects and all(p.reason == "unmatched" for p in rejects):
        return (
            f"rows were matched by {plan.match} on column {plan.key!r}: check --match / --key-column, "
            "and that the media is ingested (mmp status)"
        )
    first = rejects[0] if rejects else None
    return f"e.g. row {first.row}: {first.detail}" if first else "the file has no rows"


def _same_revision(snapshot: Snapshot, previous: Mapping[str, Any], result: AttachResult) -> bool:
    """The file and its outcome equal the set's current revision: publishing again would change nothing."""
    if result.added or result.changed or result.removed or previous["source_sha256"] != result.file.sha256:
        return False
    if (list(previous["vocabulary"]) if previous["vocabulary"] else None) != (
        list(result.vocabulary) if result.vocabulary else None
    ):
        return False
    where = (pc.field("annotation_set") == result.set_name) & (pc.field("revision") == previous["revision"])
    before = snapshot.table(ANNOTATION_REJECTS.name, columns=["row", "reason"], filter=where).to_pylist()
    return sorted((r["row"], r["reason"]) for r in before) == sorted((p.row, p.reason) for p in result.rejects)
