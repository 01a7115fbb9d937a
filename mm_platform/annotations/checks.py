"""The audit of a staged annotation revision: a Great Expectations suite per table and cross-table checks.

Row validation already keeps bad rows out with their reasons; these checks are the publish gate that holds
whatever produced the stage (the CLI, the Dagster asset, a future importer): a failure publishes nothing.
Vectorised with pyarrow (a join with ``metadata`` for boxes), never a loop per row.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.annotations.schema import (
    ANNOTATION_REJECTS,
    ANNOTATION_SETS,
    ANNOTATIONS,
    REJECT_REASONS,
    VALUE_TYPES,
)
from mm_platform.lake import AuditCheck, AuditContext, CheckResult
from mm_platform.quality import Rule, TableSuite, expectation_checks
from mm_platform.tables import MEDIA, METADATA

__all__ = [
    "ANNOTATION_CHECK_NAMES",
    "ANNOTATION_SUITES",
    "annotation_boxes_inside_image",
    "annotation_checks",
    "annotation_counts_add_up",
    "annotation_labels_in_vocabulary",
    "annotations_reference_active_media",
]

SAMPLE_ROWS = 10
_KEY = list(ANNOTATIONS.key)


def _rule(expectation: str, **kwargs: Any) -> Rule:
    return Rule(f"Expect{expectation}", kwargs)


ANNOTATION_SUITES: dict[str, TableSuite] = {
    suite.table: suite
    for suite in (
        TableSuite(
            ANNOTATIONS.name,
            ANNOTATIONS.key,
            (
                *(_rule("ColumnValuesToNotBeNull", column=c) for c in ANNOTATIONS.key),
                _rule("CompoundColumnsToBeUnique", column_list=list(ANNOTATIONS.key)),
                _rule("ColumnValuesToBeInSet", column="value_type", value_set=list(VALUE_TYPES)),
                _rule("ColumnValuesToBeBetween", column="revision", min_value=1),
                _rule("ColumnValuesToBeBetween", column="source_row", min_value=1),
                _rule("ColumnValuesToMatchRegex", column="source_sha256", regex=r"^[0-9a-f]{64}$"),
            ),
        ),
        TableSuite(
            ANNOTATION_REJECTS.name,
            ANNOTATION_REJECTS.key,
            (
                _rule("ColumnValuesToBeInSet", column="reason", value_set=list(REJECT_REASONS)),
                _rule("ColumnValuesToBeBetween", column="row", min_value=1),
                _rule("ColumnValuesToMatchRegex", column="detail", regex=r"\S"),
            ),
        ),
    )
}


def _staged(context: AuditContext, name: str, columns: list[str]) -> pa.Table:
    if name not in context.staged:
        return pa.schema([f for f in _spec_schema(name) if f.name in columns]).empty_table()
    table = context.staged[name]
    return table.select(columns)


def _spec_schema(name: str) -> pa.Schema:
    return {s.name: s.schema for s in (ANNOTATIONS, ANNOTATION_SETS, ANNOTATION_REJECTS)}[name]


def _result(name: str, table: str, bad: np.ndarray, rows: pa.Table, detail_ok: str, detail_bad: str) -> CheckResult:
    if not bad.any():
        return CheckResult(name=name, table=table, passed=True, detail=detail_ok)
    sample = rows.filter(pa.array(bad)).slice(0, SAMPLE_ROWS).to_pylist()
    return CheckResult(name=name, table=table, passed=False, detail=detail_bad, failing_rows=tuple(sample))


def annotation_boxes_inside_image(context: AuditContext) -> CheckResult:
    """Every staged box lies inside its media's image (``metadata`` width × height)."""
    name, table = "annotation_boxes_inside_image", ANNOTATIONS.name
    staged = _staged(context, table, [*_KEY, "bbox"])
    boxes = staged.filter(pc.is_valid(staged.column("bbox")))
    if boxes.num_rows == 0:
        return CheckResult(name=name, table=table, passed=True, detail="no staged boxes")
    flat = boxes.select(_KEY)
    for part in "xywh":
        flat = flat.append_column(part, pc.struct_field(boxes.column("bbox"), part))
    ids = pc.unique(flat.column("media_id"))
    sizes = context.base.table(
        METADATA.name, columns=["media_id", "width", "height"], filter=pc.field("media_id").isin(ids)
    )
    joined = flat.join(sizes, "media_id", join_type="left outer")
    x, y, w, h = (joined.column(p) for p in "xywh")
    width, height = joined.column("width"), joined.column("height")
    inside = pc.and_(
        pc.and_(pc.greater_equal(x, 0), pc.greater_equal(y, 0)),
        pc.and_(
            pc.less_equal(pc.add(x, w), pc.cast(width, pa.float64())),
            pc.less_equal(pc.add(y, h), pc.cast(height, pa.float64())),
        ),
    )
    bad = ~np.asarray(inside.fill_null(False), dtype=bool)
    return _result(
        name,
        table,
        bad,
        joined,
        f"{joined.num_rows} staged boxes lie inside their images",
        f"{int(bad.sum())} of {joined.num_rows} staged boxes lie outside their image (or it has no size)",
    )


def _vocabularies(context: AuditContext, sets: list[str]) -> dict[str, set[str]]:
    """Set → declared labels: the staged revision's declaration, else the latest published one."""
    declared: dict[str, Any] = {}
    published = context.base.table(
        ANNOTATION_SETS.name,
        columns=["annotation_set", "revision", "vocabulary"],
        filter=pc.field("annotation_set").isin(sets),
    )
    staged = _staged(context, ANNOTATION_SETS.name, ["annotation_set", "revision", "vocabulary"])
    for rows in (published, staged):  # staged rows come last and win
        for row in sorted(rows.to_pylist(), key=lambda r: r["revision"]):
            declared[row["annotation_set"]] = row["vocabulary"]
    return {name: set(vocabulary) for name, vocabulary in declared.items() if vocabulary}


def annotation_labels_in_vocabulary(context: AuditContext) -> CheckResult:
    """Every staged label is in its set's declared vocabulary, where the set declares one."""
    name, table = "annotation_labels_in_vocabulary", ANNOTATIONS.name
    staged = _staged(context, table, [*_KEY, "label"])
    labelled = staged.filter(pc.is_valid(staged.column("label")))
    vocabularies = _vocabularies(context, pc.unique(labelled.column("annotation_set")).to_pylist())
    if not vocabularies:
        return CheckResult(name=name, table=table, passed=True, detail="no staged set declares a vocabulary")
    bad = np.zeros(labelled.num_rows, dtype=bool)
    for set_name, allowed in vocabularies.items():
        in_set = np.asarray(pc.equal(labelled.column("annotation_set"), set_name), dtype=bool)
        known = np.asarray(pc.is_in(labelled.column("label"), value_set=pa.array(sorted(allowed))), dtype=bool)
        bad |= in_set & ~known
    return _result(
        name,
        table,
        bad,
        labelled,
        f"{labelled.num_rows} staged labels are in their sets' vocabularies",
        f"{int(bad.sum())} staged labels are outside their set's declared vocabulary",
    )


def annotations_reference_active_media(context: AuditContext) -> CheckResult:
    """Every staged annotation points at active media, and at the bytes it was attached to."""
    name, table = "annotations_reference_active_media", ANNOTATIONS.name
    staged = _staged(context, table, [*_KEY, "source_content_sha256"])
    if staged.num_rows == 0:
        return CheckResult(name=name, table=table, passed=True, detail="no staged annotations")
    media = context.base.table(
        MEDIA.name,
        columns=["media_id", "content_sha256"],
        filter=pc.field("media_id").isin(pc.unique(staged.column("media_id"))) & (pc.field("status") == "active"),
    )
    joined = staged.join(media, "media_id", join_type="left outer")
    same = pc.equal(joined.column("source_content_sha256"), joined.column("content_sha256"))
    bad = ~np.asarray(same.fill_null(False), dtype=bool)
    return _result(
        name,
        table,
        bad,
        joined,
        f"{joined.num_rows} staged annotations point at active media with the bytes they describe",
        f"{int(bad.sum())} staged annotations point at media that is not active or holds other bytes",
    )


def annotation_counts_add_up(context: AuditContext) -> CheckResult:
    """Per staged revision: attached + rejected = the file's rows; its rejects and annotations are all staged."""
    name, table = "annotation_counts_add_up", ANNOTATION_SETS.name
    revisions = _staged(
        context,
        table,
        ["annotation_set", "revision", "rows_in_file", "rows_attached", "rows_rejected", "annotations"],
    )
    if revisions.num_rows == 0:
        return CheckResult(name=name, table=table, passed=True, detail="no staged revision")
    rejects = _staged(context, ANNOTATION_REJECTS.name, ["annotation_set", "revision"]).to_pylist()
    annotations = _staged(context, ANNOTATIONS.name, ["annotation_set"]).column("annotation_set").to_pylist()
    rejected = Counter((r["annotation_set"], r["revision"]) for r in rejects)
    attached = Counter(annotations)
    problems = []
    for row in revisions.to_pylist():
        where = f"{row['annotation_set']} r{row['revision']}"
        if row["rows_attached"] + row["rows_rejected"] != row["rows_in_file"]:
            problems.append(
                {
                    **row,
                    "problem": f"{where}: {row['rows_attached']} attached + {row['rows_rejected']} rejected "
                    f"!= {row['rows_in_file']} rows in the file",
                }
            )
        elif rejected.get((row["annotation_set"], row["revision"]), 0) != row["rows_rejected"]:
            problems.append({**row, "problem": f"{where}: the rejected rows are not all staged"})
        elif attached.get(row["annotation_set"], 0) != row["annotations"]:
            problems.append({**row, "problem": f"{where}: the set's annotation rows are not all staged"})
    if not problems:
        return CheckResult(
            name=name, table=table, passed=True, detail=f"{revisions.num_rows} staged revision(s) account for every row"
        )
    return CheckResult(
        name=name,
        table=table,
        passed=False,
        detail="; ".join(p["problem"] for p in problems),
        failing_rows=tuple(problems[:SAMPLE_ROWS]),
    )


def annotation_checks() -> list[AuditCheck]:
    """The audit an annotation revision passes before it is published."""
    return [
        *expectation_checks(ANNOTATION_SUITES),
        annotation_boxes_inside_image,
        annotation_labels_in_vocabulary,
        annotations_reference_active_media,
        annotation_counts_add_up,
    ]


ANNOTATION_CHECK_NAMES: dict[str, str] = {
    **{f"gx_{table}": table for table in ANNOTATION_SUITES},
    "annotation_boxes_inside_image": ANNOTATIONS.name,
    "annotation_labels_in_vocabulary": ANNOTATIONS.name,
    "annotations_reference_active_media": ANNOTATIONS.name,
    "annotation_counts_add_up": ANNOTATION_SETS.name,
}
"""Every check :func:`annotation_checks` returns, by name, with its table (declared up front in Dagster)."""
