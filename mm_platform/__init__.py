"""mm-platform: a consistent, versioned, searchable record of multimodal media on Delta Lake.

The names below are imported on first use (PEP 562): a worker process that needs one small module (a folder
scan, a probe) must not pay for the lake, Delta and the table catalog (about 0.9 s here) at start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "CATALOG": "mm_platform.catalog",
    "open_lake": "mm_platform.catalog",
    "MMPlatformError": "mm_platform.errors",
    **{
        name: "mm_platform.lake"
        for name in (
            "AuditContext",
            "CheckResult",
            "Lake",
            "LakeLocation",
            "PublishResult",
            "RowFilter",
            "Snapshot",
            "TableWrite",
        )
    },
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mm_platform' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
