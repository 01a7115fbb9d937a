"""The erasure audit table: one row per media per erasure request (part of every lake's catalog)."""

from __future__ import annotations

import pyarrow as pa

from mm_platform.lake import LINEAGE_FIELDS, TS, TableSpec

ERASE_VERSION = "1"

ERASURES = TableSpec(
    name="erasures",
    key=("erasure_id", "media_id"),
    description="One row per media per erasure request: what, when, why. Never the URI or the content.",
    schema=pa.schema(
        [
            pa.field("erasure_id", pa.string(), nullable=False),
            pa.field("media_id", pa.string(), nullable=False),
            pa.field("uri_sha256", pa.string(), nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("requested_by", pa.string(), nullable=False),
            pa.field("erased_at", TS, nullable=False),
            # Null: the seq is known only once published; the erase publish's log entry has partition
            # ``erasure:<erasure_id>`` (see ``erasure_publishes``).
            pa.field("publish_seq", pa.int64()),
            *LINEAGE_FIELDS,
        ]
    ),
    restorable=False,  # the audit trail is never rolled back
    retires="media_id",  # an erased media id never comes back (a merge refuses it)
)
