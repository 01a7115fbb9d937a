"""mm-platform: a consistent, versioned, searchable record of multimodal media on Delta Lake."""

from mm_platform.catalog import CATALOG, open_lake
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
    "CATALOG",
    "AuditContext",
    "CheckResult",
    "Lake",
    "LakeLocation",
    "MMPlatformError",
    "PublishResult",
    "RowFilter",
    "Snapshot",
    "TableWrite",
    "open_lake",
]
