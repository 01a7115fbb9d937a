"""The annotation tables, listed in the platform's catalog (``mm_platform.catalog``) so every lake has them.

Three tables, because they answer three different questions and each one has its own key:

* ``annotations`` — one row per (media, annotation set, annotation key): the typed value (label, score, box,
  free-form JSON, and any extra column the team's file brings, added by schema evolution), where it came from
  (file, file version, row) and the revision that last changed it. A revision replaces its set's rows;
  a row whose value did not change is carried into the new revision as it was, so ``mmp diff`` between two
  revisions lists exactly the rows whose value changed.
* ``annotation_sets`` — one row per published revision of a set (append-only): the file version, how rows
  were matched, the declared vocabulary and the counts, which add up to the file's row count.
* ``annotation_rejects`` — one row per file row that was kept out, with its row number and reason. A table
  rather than a note in the publish log: rejects are bad input, and like ``quarantine`` they stay queryable
  in every snapshot (and travel with exports), and erasure removes the ones tied to an erased media id.
"""

from __future__ import annotations

import pyarrow as pa

from mm_platform.lake.schemas import LINEAGE_FIELDS, TS, TableSpec

__all__ = [
    "ANNOTATIONS",
    "ANNOTATION_REJECTS",
    "ANNOTATION_SETS",
    "BOX_TYPE",
    "REJECT_REASONS",
    "SOURCE_FIELDS",
    "VALUE_COLUMNS",
    "VALUE_TYPES",
]

BOX_TYPE = pa.struct(
    [
        pa.field("x", pa.float64(), nullable=False),
        pa.field("y", pa.float64(), nullable=False),
        pa.field("w", pa.float64(), nullable=False),
        pa.field("h", pa.float64(), nullable=False),
    ]
)
"""A bounding box in pixels of the stored image: top-left corner (x, y), width and height."""

SOURCE_FIELDS = (
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_version", pa.string(), nullable=False),
    pa.field("source_sha256", pa.string(), nullable=False),
)
"""The file version a row came from: its URI, its S3 VersionId / ETag (local: size-mtime), its SHA-256."""

VALUE_TYPES = ("box", "label", "score", "json", "fields")
"""What a row mainly holds: a box (maybe labelled), a label, a bare score, a JSON value, or only extra fields."""

REJECT_REASONS = (
    "malformed_row",
    "missing_key",
    "unmatched",
    "ambiguous_key",
    "duplicate_key",
    "wrong_type",
    "empty_row",
    "box_outside_image",
    "label_not_in_vocabulary",
)
"""Why a file row was kept out (``annotation_rejects.reason``)."""

ANNOTATIONS = TableSpec(
    name="annotations",
    key=("media_id", "annotation_set", "annotation_key"),
    description="Users' labels, boxes, scores, JSON values and extra fields, attached to media by key.",
    schema=pa.schema(
        [
            pa.field("media_id", pa.string(), nullable=False),
            pa.field("annotation_set", pa.string(), nullable=False),
            pa.field("annotation_key", pa.string(), nullable=False),
            pa.field("value_type", pa.string(), nullable=False),
            pa.field("label", pa.string()),
            pa.field("score", pa.float64()),
            pa.field("bbox", BOX_TYPE),
            pa.field("value_json", pa.string()),
            pa.field("revision", pa.int64(), nullable=False),
            *SOURCE_FIELDS,
            pa.field("source_row", pa.int64(), nullable=False),
            pa.field("match_by", pa.string(), nullable=False),
            pa.field("match_value", pa.string(), nullable=False),
            pa.field("attached_at", TS, nullable=False),
            *LINEAGE_FIELDS,
        ]
    ),
)

VALUE_COLUMNS = ("value_type", "label", "score", "bbox", "value_json", "producer", "source_content_sha256")
"""What makes an annotation's value: a row equal in these (and in every extra column) is unchanged."""

ANNOTATION_SETS = TableSpec(
    name="annotation_sets",
    key=("annotation_set", "revision"),
    description="One row per published revision of an annotation set: its file version, options and counts.",
    schema=pa.schema(
        [
            pa.field("annotation_set", pa.string(), nullable=False),
            pa.field("revision", pa.int64(), nullable=False),
            *SOURCE_FIELDS,
            pa.field("source_format", pa.string(), nullable=False),
            pa.field("match_by", pa.string(), nullable=False),
            pa.field("key_column", pa.string(), nullable=False),
            pa.field("id_column", pa.string()),
            pa.field("vocabulary", pa.list_(pa.string())),
            pa.field("rows_in_file", pa.int64(), nullable=False),
            pa.field("rows_attached", pa.int64(), nullable=False),
            pa.field("rows_rejected", pa.int64(), nullable=False),
            pa.field("annotations", pa.int64(), nullable=False),
            pa.field("added", pa.int64(), nullable=False),
            pa.field("changed", pa.int64(), nullable=False),
            pa.field("removed", pa.int64(), nullable=False),
            pa.field("unchanged", pa.int64(), nullable=False),
            pa.field("attached_at", TS, nullable=False),
            *LINEAGE_FIELDS,
        ]
    ),
)

ANNOTATION_REJECTS = TableSpec(
    name="annotation_rejects",
    key=("annotation_set", "revision", "row"),
    description="File rows kept out of an annotation set's revision, with their row number and reason.",
    schema=pa.schema(
        [
            pa.field("annotation_set", pa.string(), nullable=False),
            pa.field("revision", pa.int64(), nullable=False),
            pa.field("row", pa.int64(), nullable=False),
            pa.field("line", pa.int64()),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("detail", pa.string(), nullable=False),
            pa.field("media_id", pa.string()),
            pa.field("raw", pa.string()),
            *SOURCE_FIELDS,
            *LINEAGE_FIELDS,
        ]
    ),
)

ANNOTATION_TABLES: tuple[TableSpec, ...] = (ANNOTATIONS, ANNOTATION_SETS, ANNOTATION_REJECTS)
"""What annotations add to the lake's catalog (``mm_platform.catalog``)."""
