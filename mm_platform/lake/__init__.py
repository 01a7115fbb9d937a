"""The lake: Delta tables, the write–audit–publish protocol, snapshots and maintenance.

A closed library: it holds the tables of the ``TableCatalog`` it is opened with and knows nothing of the
domain (``mm_platform.catalog`` composes the platform's tables and opens lakes with them). Publishes are
typed operations (``Write``, ``Merge``, ``Erase``, ``Compact``, ``Restore``) committed by one protocol.
"""

from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult, prepare_checks
from mm_platform.lake.catalog import TableCatalog
from mm_platform.lake.lake import BranchLake, Lake
from mm_platform.lake.maintenance import CompactionReport, VacuumReport
from mm_platform.lake.operations import Compact, Erase, Merge, Operation, Restore, Write
from mm_platform.lake.schemas import LINEAGE_COLUMNS, LINEAGE_FIELDS, TS, TableSpec
from mm_platform.lake.snapshot import Snapshot
from mm_platform.lake.stage import RowFilter, Stage, TableWrite
from mm_platform.lake.stage_writer import StageWriter
from mm_platform.lake.staged import PublishResult, StagedPartition
from mm_platform.lake.storage import LakeLocation

__all__ = [
    "prepare_checks",
    "LINEAGE_COLUMNS",
    "LINEAGE_FIELDS",
    "TS",
    "AuditCheck",
    "AuditContext",
    "BranchLake",
    "CheckResult",
    "Compact",
    "CompactionReport",
    "Erase",
    "Lake",
    "LakeLocation",
    "Merge",
    "Operation",
    "PublishResult",
    "Restore",
    "RowFilter",
    "Snapshot",
    "Stage",
    "StageWriter",
    "StagedPartition",
    "TableCatalog",
    "TableSpec",
    "TableWrite",
    "VacuumReport",
    "Write",
]
