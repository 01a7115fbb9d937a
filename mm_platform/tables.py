"""The platform's core media tables: Arrow schemas, keys and lineage (README: "Tables").

New fields arrive by schema evolution (Delta ``schema_mode="merge"``), never by a migration, so a schema
here is the *minimum* a table has; producers may add nullable columns. ``mm_platform.catalog`` lists these
with the annotation and erasure tables.
"""

from __future__ import annotations

import pyarrow as pa

from mm_platform.lake import LINEAGE_FIELDS, TS, TableSpec


def _with_lineage(*fields: pa.Field) -> pa.Schema:
    return pa.schema([*fields, *LINEAGE_FIELDS])


MEDIA = TableSpec(
    name="media",
    key=("media_id",),
    description="One row per registered source object version.",
    schema=_with_lineage(
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("etag", pa.string()),
        pa.field("version_id", pa.string()),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("content_sha256", pa.string()),
        pa.field("mime_type", pa.string()),
        pa.field("modality", pa.string()),
        pa.field("last_modified", TS),
        pa.field("status", pa.string(), nullable=False),
        pa.field("registered_at", TS, nullable=False),
    ),
)

METADATA = TableSpec(
    name="metadata",
    key=("media_id",),
    description="Extracted metadata per media content and extractor version.",
    schema=_with_lineage(
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("content_sha256", pa.string(), nullable=False),
        pa.field("modality", pa.string()),
        pa.field("mime_type", pa.string()),
        pa.field("format", pa.string()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("mode", pa.string()),
        pa.field("frame_count", pa.int64()),
        pa.field("exif", pa.map_(pa.string(), pa.string())),
        pa.field("orientation", pa.int64()),
        pa.field("camera_make", pa.string()),
        pa.field("camera_model", pa.string()),
        pa.field("captured_at", pa.string()),
        pa.field("gps_lat", pa.float64()),
        pa.field("gps_lon", pa.float64()),
        pa.field("container", pa.string()),
        pa.field("codec", pa.string()),
        pa.field("fps", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("has_audio", pa.bool_()),
        pa.field("sample_rate", pa.int64()),
        pa.field("channels", pa.int64()),
        pa.field("page_count", pa.int64()),
        pa.field("title", pa.string()),
        pa.field("author", pa.string()),
        pa.field("encrypted", pa.bool_()),
        pa.field("text", pa.string()),
        pa.field("text_chunks", pa.int64()),
    ),
)

DERIVED = TableSpec(
    name="derived",
    key=("derived_id",),
    description="Artifacts derived from media: thumbnails, keyframes, text chunks, model labels.",
    schema=_with_lineage(
        pa.field("derived_id", pa.string(), nullable=False),
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("ordinal", pa.int64(), nullable=False),
        pa.field("mime_type", pa.string()),
        pa.field("data", pa.binary()),
        pa.field("uri", pa.string()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("timestamp_s", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("label", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("params", pa.string()),
        pa.field("producer_key", pa.string()),
    ),
)

EMBEDDINGS = TableSpec(
    name="embeddings",
    key=("subject_id", "model_id"),
    description="Vectors per (media or derived subject, model). "
    "Stored as list<float32> with `dim`: one table holds models of different widths.",
    schema=_with_lineage(
        pa.field("subject_id", pa.string(), nullable=False),
        pa.field("subject_kind", pa.string(), nullable=False),
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("model_revision", pa.string(), nullable=False),
        pa.field("dim", pa.int32(), nullable=False),
        pa.field("normalized", pa.bool_(), nullable=False),
        pa.field("vector", pa.list_(pa.float32()), nullable=False),
        pa.field("producer_key", pa.string()),
    ),
)

QUARANTINE = TableSpec(
    name="quarantine",
    key=("media_id",),
    description="Rejected object versions, kept with the stage and the reason.",
    schema=_with_lineage(
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("content_sha256", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("quarantined_at", TS, nullable=False),
    ),
)

SETTINGS = TableSpec(
    name="settings",
    key=("key",),
    description="Lake-wide choices that belong to a snapshot, e.g. the active embedding model per modality.",
    schema=_with_lineage(
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        pa.field("updated_at", TS, nullable=False),
    ),
)

# `producer_key` (media_id|producer) lets one producer's rows be replaced without touching another's:
# a new embedding model's vectors are written beside the old model's, keyed by model.
PRODUCER_KEY = "producer_key"

CORE_TABLES: tuple[TableSpec, ...] = (MEDIA, METADATA, DERIVED, EMBEDDINGS, QUARANTINE, SETTINGS)
"""The media tables every lake of this platform holds (``mm_platform.catalog`` adds the rest)."""
