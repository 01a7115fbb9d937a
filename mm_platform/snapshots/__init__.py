"""Working with whole snapshots: what changed between two, exporting one (pinned to its source objects)
and verifying the export later, and a PyTorch dataset over a snapshot's images.

``SnapshotImageDataset`` is imported on first use, so importing this package does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mm_platform.snapshots._manifest import ExportedTable, ExportManifest
from mm_platform.snapshots._pinned import PinnedObject
from mm_platform.snapshots.diff import SnapshotDiff, TableDiff, diff_snapshots
from mm_platform.snapshots.export import ObjectProblem, VerifyReport, export_snapshot, verify_export

if TYPE_CHECKING:
    from mm_platform.snapshots.torch_dataset import SnapshotImageDataset

__all__ = [
    "ExportManifest",
    "ExportedTable",
    "ObjectProblem",
    "PinnedObject",
    "SnapshotDiff",
    "SnapshotImageDataset",
    "TableDiff",
    "VerifyReport",
    "diff_snapshots",
    "export_snapshot",
    "verify_export",
]


def __getattr__(name: str) -> Any:
    if name == "SnapshotImageDataset":
        from mm_platform.snapshots.torch_dataset import SnapshotImageDataset

        return SnapshotImageDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
