"""Data quality for the write–audit–publish gate: Great Expectations suites per table and cross-table checks.

Plain Python (no Dagster): every check is an :data:`~mm_platform.lake.AuditCheck`, so the same list runs in
``Lake.publish(..., checks=...)``, in the CLI and behind a Dagster blocking asset check.
"""

from __future__ import annotations

from collections.abc import Mapping

from mm_platform.lake.audit import AuditCheck
from mm_platform.quality.cross_table import embeddings_reference_media, media_has_metadata_or_quarantine
from mm_platform.quality.expectations import SUITES, Rule, TableSuite, validate_table
from mm_platform.quality.gx_process import expectation_checks, prepare_in_background
from mm_platform.quality.row_gate import DEFAULT_MAX_INVALID_SHARE, validation_share_check
from mm_platform.quality.vector_checks import UNIT_NORM_TOLERANCE, embedding_model_check, embedding_vectors
from mm_platform.tables import EMBEDDINGS, MEDIA, QUARANTINE

__all__ = [
    "CHECK_TABLES",
    "DEFAULT_MAX_INVALID_SHARE",
    "SUITES",
    "UNIT_NORM_TOLERANCE",
    "Rule",
    "TableSuite",
    "cross_table_checks",
    "default_checks",
    "embedding_model_check",
    "embedding_vectors",
    "embeddings_reference_media",
    "expectation_checks",
    "prepare_in_background",
    "media_has_metadata_or_quarantine",
    "validate_table",
    "validation_share_check",
]


def cross_table_checks(expected_models: Mapping[str, int]) -> list[AuditCheck]:
    """The checks across tables and on vectors; ``expected_models`` maps each allowed model id to its dim."""
    return [
        media_has_metadata_or_quarantine,
        embeddings_reference_media,
        embedding_vectors,
        embedding_model_check(expected_models),
    ]


def default_checks(
    expected_models: Mapping[str, int], max_invalid_share: float = DEFAULT_MAX_INVALID_SHARE
) -> list[AuditCheck]:
    """Every table's expectation suite, the cross-table checks, and the share of objects that failed row
    rules (row failures quarantine their object; too many of them block the batch): what a publish runs."""
    return [
        *expectation_checks(),
        *cross_table_checks(expected_models),
        validation_share_check(max_invalid_share),
    ]


CHECK_TABLES: dict[str, str] = {
    **{f"gx_{table}": table for table in SUITES},
    "media_has_metadata_or_quarantine": MEDIA.name,
    "embeddings_reference_media": EMBEDDINGS.name,
    "embedding_vectors_finite": EMBEDDINGS.name,
    "embedding_vector_dims": EMBEDDINGS.name,
    "embedding_vectors_unit_norm": EMBEDDINGS.name,
    "embedding_models": EMBEDDINGS.name,
    "validation_share": QUARANTINE.name,
}
"""Every check :func:`default_checks` returns, by name, with the table it is about (for declaring them up front)."""
