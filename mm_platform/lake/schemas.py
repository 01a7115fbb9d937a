"""What a lake table is (``TableSpec``), the lineage every data row carries, and the publish log's own table.

The data tables themselves are the domain's (``mm_platform.tables``, ``mm_platform.catalog``). New fields
arrive by schema evolution (Delta ``schema_mode="merge"``), never by a migration, so a spec's schema is the
*minimum* a table has; producers may add nullable columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("us", tz="UTC")

# Lineage on every row: which bytes, which producer at which version, which run, which ingest batch.
LINEAGE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("source_content_sha256", pa.string()),
    pa.field("producer", pa.string(), nullable=False),
    pa.field("producer_version", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("partition", pa.string(), nullable=False),
)
LINEAGE_COLUMNS = tuple(f.name for f in LINEAGE_FIELDS)


@dataclass(frozen=True)
class TableSpec:
    """A Delta table of the lake."""

    name: str
    """Folder name under the lake root."""
    schema: pa.Schema
    """Minimum schema; producers may add nullable columns."""
    key: tuple[str, ...]
    """Columns that identify a row; unique within a snapshot."""
    description: str
    restorable: bool = True
    """False for an audit trail: a rollback leaves the table as it is (no entry is ever taken back)."""
    retires: str | None = None
    """A column whose values this table's rows retire for good (an erasure's media ids): a merge never brings
    rows with them back into another table, and a merge that adds rows here is an ``Erase``."""


PUBLISH_LOG = TableSpec(
    name="_publish_log",
    key=("publish_seq", "event"),
    description="The publish protocol's event log: intent / published / aborted / rejected.",
    schema=pa.schema(
        [
            pa.field("publish_seq", pa.int64()),
            pa.field("event", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("partition", pa.string()),
            pa.field("stage_id", pa.string()),
            pa.field("table_versions", pa.map_(pa.string(), pa.int64())),
            pa.field("row_counts", pa.map_(pa.string(), pa.int64())),
            pa.field("checks", pa.string()),
            pa.field("message", pa.string()),
            pa.field("run_id", pa.string()),
            pa.field("code_version", pa.string()),
            pa.field("created_at", TS, nullable=False),
        ]
    ),
)


def joined_keys(rows: pa.Table, key: Sequence[str]) -> pa.Array:
    """One string per row that identifies it (key columns joined by a separator no key contains)."""
    columns = [pc.cast(rows.column(k), pa.string()) for k in key]
    joined = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, "\x1f")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
