"""The lake: Delta tables, the write–audit–publish protocol, snapshots and maintenance."""

from mm_platform.lake import erasure as erasure  # registers the `erasures` table before any Lake.open
from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult
from mm_platform.lake.lake import Lake
from mm_platform.lake.maintenance import VacuumReport
from mm_platform.lake.publish import PublishResult
from mm_platform.lake.schemas import DATA_TABLES, LINEAGE_COLUMNS, TableSpec, register_table
from mm_platform.lake.snapshot import Snapshot
from mm_platform.lake.stage import RowFilter, TableWrite
from mm_platform.lake.storage import LakeLocation

__all__ = [
    "DATA_TABLES",
    "LINEAGE_COLUMNS",
    "AuditCheck",
    "AuditContext",
    "CheckResult",
    "Lake",
    "LakeLocation",
    "PublishResult",
    "RowFilter",
    "Snapshot",
    "TableSpec",
    "TableWrite",
    "VacuumReport",
    "register_table",
]
