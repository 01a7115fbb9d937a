"""Annotations: users' labels, boxes, scores, IDs and other fields, attached to media by key, in revisions.

Plain Python (no Dagster). ``attach_file`` reads a CSV / Parquet / JSON Lines file (local or S3), matches
its rows to media by URI, object key or content hash, keeps bad rows out with their row number and reason,
and publishes the set's next revision through the lake's stage → audit → publish gate. The tables
(``annotations``, ``annotation_sets``, ``annotation_rejects``) are in the catalog every lake is opened
with (``mm_platform.catalog``); the rest of this package loads on first use (``mmp status`` does not pay for
the S3 client and the quality suites).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mm_platform.annotations.model import (
    MATCH_KINDS,
    AttachOptions,
    FileVersion,
    NothingAttachedError,
    RowProblem,
    RowsRejectedError,
)
from mm_platform.annotations.schema import ANNOTATION_REJECTS, ANNOTATION_SETS, ANNOTATIONS

if TYPE_CHECKING:
    from mm_platform.annotations.attach import AttachResult, attach_file, latest_revision, partition_for
    from mm_platform.annotations.checks import ANNOTATION_CHECK_NAMES, annotation_checks
    from mm_platform.annotations.read import AnnotationFile, read_annotation_file

_LAZY = {
    "AttachResult": "attach",
    "attach_file": "attach",
    "latest_revision": "attach",
    "partition_for": "attach",
    "ANNOTATION_CHECK_NAMES": "checks",
    "annotation_checks": "checks",
    "AnnotationFile": "read",
    "read_annotation_file": "read",
}

__all__ = [
    "ANNOTATIONS",
    "ANNOTATION_CHECK_NAMES",
    "ANNOTATION_REJECTS",
    "ANNOTATION_SETS",
    "MATCH_KINDS",
    "AnnotationFile",
    "AttachOptions",
    "AttachResult",
    "FileVersion",
    "NothingAttachedError",
    "RowProblem",
    "RowsRejectedError",
    "annotation_checks",
    "attach_file",
    "latest_revision",
    "partition_for",
    "read_annotation_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
