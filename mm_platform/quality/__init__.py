"""Data quality for the write–audit–publish gate: Great Expectations suites per table and cross-table checks.

Plain Python (no Dagster): every check is an :data:`~mm_platform.lake.AuditCheck`, so the same list runs in
``Lake.publish(..., checks=...)``, in the CLI and behind a Dagster blocking asset check.
"""

from __future__ import annotations

from collections.abc import Mapping

from mm_platform.lake.audit import AuditCheck
from mm_platform.quality.cross_table import (
    UNIT_NORM_TOLERANCE,
    embedding_model_check,
    embedding_vectors,
    embeddings_reference_media,
    media_has_metadata_or_quarantine,
)
from mm_platform.quality.expectations import SUITES, Rule, TableSuite, expectation_checks, validate_table

__all__ = [
    "CHECK_TABLES",
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
    "media_has_metadata_or_quarantine",
    "validate_table",
]


def cross_table_checks(expected_models: Mapping[str, int]) -> list[AuditCheck]:
    """The checks across tables and on vectors; ``expected_models`` maps each allowed model id to its dim."""
    return [
        media_has_metadata_or_quarantine,
        embeddings_reference_media,
        embedding_vectors,
        embedding_model_check(expected_models),
    ]


def default_checks(expected_models: Mapping[str, int]) -> list[AuditCheck]:
    """Every table's expectation suite, then the cross-table checks: the audit a pipeline publish runs."""
    return [*expectation_checks(), *cross_table_checks(expected_models)]


CHECK_TABLES: dict[str, str] = {
    **{f"gx_{table}": table for table in SUITES},
    "media_has_metadata_or_quarantine": "media",
    "embeddings_reference_media": "embeddings",
    "embedding_vectors_finite": "embeddings",
    "embedding_vector_dims": "embeddings",
    "embedding_vectors_unit_norm": "embeddings",
    "embedding_models": "embeddings",
}
"""Every check :func:`default_checks` returns, by name, with the table it is about (for declaring them up front)."""
