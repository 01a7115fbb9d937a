"""The write step: gate a batch's gathered rows per row, then write them into its stage.

Rows that break a per-row rule are gated out before they are written (:mod:`mm_platform.quality.row_gate`):
their object is quarantined, with one quarantine row naming check, column and value, and the batch goes on.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.catalog import CATALOG
from mm_platform.ingest.analyze import ANALYZE_VERSION
from mm_platform.ingest.batch_state import BatchState, Rows
from mm_platform.ingest.rows import quarantine_row
from mm_platform.lake.stage_writer import StageWriter
from mm_platform.media import QuarantineReason
from mm_platform.quality.row_gate import VALIDATION_STAGE, failures_by_object
from mm_platform.tables import DERIVED, EMBEDDINGS, METADATA, QUARANTINE

__all__ = ["write_rows"]

_GATED_TABLES = (METADATA.name, DERIVED.name, EMBEDDINGS.name)


def write_rows(state: BatchState, writer: StageWriter, out: Rows) -> None:
    """Gate ``out`` (emptied) and write what passes; the tables outside the batch's scope are dropped."""
    tables = {
        name: pa.Table.from_pylist(rows, schema=_schema_for(name, rows))
        for name, rows in out.items()
        if rows and name in state.scope.written  # a shadow batch leaves registration and verdicts as published
    }
    out.clear()
    failures = failures_by_object({name: tables[name] for name in _GATED_TABLES if name in tables})
    if failures:
        tables = _quarantine_invalid(state, tables, failures)
    for name, rows in tables.items():
        if rows.num_rows:
            writer.write(name, rows)
            if name in state.report.rows:
                state.report.rows[name] += rows.num_rows


def _quarantine_invalid(
    state: BatchState, tables: dict[str, pa.Table], failures: dict[str, Any]
) -> dict[str, pa.Table]:
    """Drop the failing objects' rows; each object gets one quarantine row naming check, column, value."""
    failing = pa.array(sorted(failures), pa.string())
    kept = {
        name: rows.filter(pc.invert(pc.is_in(rows.column("media_id"), value_set=failing)))
        if name in _GATED_TABLES
        else rows
        for name, rows in tables.items()
    }
    uri_of = state.uri_of()
    quarantine = []
    sha_of = {str(row["media_id"]): row["content_sha256"] for row in state.media_rows}
    for media_id, failure in failures.items():
        sha = str(sha_of.get(media_id) or "")
        lineage = state.lineage(sha or None, "validation", ANALYZE_VERSION)
        reason = QuarantineReason.INVALID.value
        quarantine.append(
            quarantine_row(media_id, uri_of[media_id], sha or None, VALIDATION_STAGE, reason, failure.detail(), lineage)
        )
        state.media_status[media_id] = "quarantined"
        state.report.count_quarantined(reason)
        if media_id in state.sha_by_media:  # it was counted as analysed
            state.report.analyzed -= 1
    rows = pa.Table.from_pylist(quarantine, schema=CATALOG[QUARANTINE.name].schema)
    kept[QUARANTINE.name] = pa.concat_tables([kept[QUARANTINE.name], rows]) if QUARANTINE.name in kept else rows
    return kept


def _schema_for(name: str, rows: list[dict[str, object]]) -> pa.Schema:
    """The table's schema plus any new scalar columns the rows bring (schema evolution)."""
    base = CATALOG[name].schema
    known = set(base.names)  # once: `Schema.names` builds a new list on every access
    extra: dict[str, pa.DataType] = {}
    for row in rows:
        for key, value in row.items():
            if key in known or key in extra or value is None:
                continue
            extra[key] = pa.array([value]).type
    return pa.schema([*base, *(pa.field(k, t) for k, t in extra.items())])
