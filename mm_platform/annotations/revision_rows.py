"""The rows one annotation revision writes: its ``annotations`` rows (an unchanged value carried forward with
its old lineage), its ``annotation_sets`` row and its ``annotation_rejects`` rows, each with the revision's
lineage columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from mm_platform.annotations.match import MediaTarget
from mm_platform.annotations.model import AttachResult, FileVersion
from mm_platform.annotations.schema import ANNOTATION_REJECTS, ANNOTATION_SETS
from mm_platform.annotations.validate import Accepted, ColumnPlan

__all__ = [
    "ANNOTATE_VERSION",
    "annotation_row",
    "annotations_schema",
    "carry_forward",
    "lineage_columns",
    "reject_rows",
    "set_row",
    "source_columns",
]

ANNOTATE_VERSION = "1"
"""The code version of attaching (the rows' ``producer_version``; ``producer`` says who made the labels)."""


def annotation_row(
    accepted: Accepted,
    target: MediaTarget,
    set_name: str,
    revision: int,
    version: FileVersion,
    plan: ColumnPlan,
    producer: str,
    run_id: str,
    partition: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "media_id": target.media_id,
        "annotation_set": set_name,
        "annotation_key": accepted.annotation_key,
        **accepted.values,
        "revision": revision,
        **source_columns(version),
        "source_row": accepted.row.row,
        "match_by": plan.match,
        "match_value": accepted.match_value,
        "attached_at": now,
        "source_content_sha256": target.content_sha256,
        "producer": producer,
        "producer_version": ANNOTATE_VERSION,
        "run_id": run_id,
        "partition": partition,
    }


def carry_forward(
    old: list[dict[str, Any]], fresh: list[dict[str, Any]], value_columns: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The revision's rows: an unchanged value keeps its old row (and lineage); counts of what changed."""

    def key(row: Mapping[str, Any]) -> tuple[str, str]:
        return row["media_id"], row["annotation_key"]

    def value(row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(c) for c in value_columns)

    before = {key(row): row for row in old}
    rows: list[dict[str, Any]] = []
    counts = {"added": 0, "changed": 0, "unchanged": 0}
    for row in fresh:
        previous = before.pop(key(row), None)
        if previous is None:
            counts["added"] += 1
            rows.append(row)
        elif value(previous) == value(row):
            counts["unchanged"] += 1
            rows.append(previous)
        else:
            counts["changed"] += 1
            rows.append(row)
    return rows, {**counts, "removed": len(before)}


def annotations_schema(current: pa.Schema, plan: ColumnPlan) -> pa.Schema:
    fields = list(current) + [pa.field(name, plan.extras[name]) for name in plan.new_extras]
    return pa.schema(fields)


def source_columns(version: FileVersion) -> dict[str, Any]:
    return {"source_file": version.uri, "source_version": version.version, "source_sha256": version.sha256}


def lineage_columns(run_id: str, partition: str, producer: str) -> dict[str, Any]:
    return {
        "source_content_sha256": None,
        "producer": producer,
        "producer_version": ANNOTATE_VERSION,
        "run_id": run_id,
        "partition": partition,
    }


def set_row(
    result: AttachResult, plan: ColumnPlan, run_id: str, partition: str, now: datetime, producer: str
) -> pa.Table:
    row = {
        "annotation_set": result.set_name,
        "revision": result.revision,
        **source_columns(result.file),
        "source_format": result.file.format,
        "match_by": plan.match,
        "key_column": result.key_column,
        "id_column": result.id_column,
        "vocabulary": None if result.vocabulary is None else list(result.vocabulary),
        "rows_in_file": result.rows_in_file,
        "rows_attached": result.rows_attached,
        "rows_rejected": result.rows_rejected,
        "annotations": result.annotations,
        "added": result.added,
        "changed": result.changed,
        "removed": result.removed,
        "unchanged": result.unchanged,
        "attached_at": now,
        **lineage_columns(run_id, partition, producer),
    }
    return pa.Table.from_pylist([row], schema=ANNOTATION_SETS.schema)


def reject_rows(result: AttachResult, run_id: str, partition: str, producer: str) -> pa.Table:
    rows = [
        {
            "annotation_set": result.set_name,
            "revision": result.revision,
            "row": p.row,
            "line": p.line,
            "reason": p.reason,
            "detail": p.detail,
            "media_id": p.media_id,
            "raw": p.raw,
            **source_columns(result.file),
            **lineage_columns(run_id, partition, producer),
        }
        for p in result.rejects
    ]
    return pa.Table.from_pylist(rows, schema=ANNOTATION_REJECTS.schema)
