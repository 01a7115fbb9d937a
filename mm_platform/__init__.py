"""mm-platform: a consistent, versioned, searchable record of multimodal media on Delta Lake."""

from mm_platform.annotations import schema as _annotation_tables  # noqa: F401 - registers the annotation tables
from mm_platform.errors import MMPlatformError
from mm_platform.lake import (
    AuditContext,
    CheckResult,
    Lake,
    LakeLocation,
    PublishResult,
    RowFilter,
    Snapshot,
    TableWrite,
)

__all__ = [
    "AuditContext",
    "CheckResult",
    "Lake",
    "LakeLocation",
    "MMPlatformError",
    "PublishResult",
    "RowFilter",
    "Snapshot",
    "TableWrite",
]
