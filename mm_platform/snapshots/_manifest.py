"""``manifest.json`` of a snapshot export: what was exported, and which source object versions it rests on."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mm_platform.errors import ConfigError
from mm_platform.snapshots._pinned import PinnedObject

__all__ = ["MANIFEST_NAME", "ExportManifest", "ExportedTable", "PinnedAnnotationFile"]

MANIFEST_NAME = "manifest.json"
FORMAT = "mm-platform-snapshot-export"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExportedTable:
    """One table of the snapshot, written as one Parquet file."""

    file: str
    """Path relative to the export folder."""
    rows: int
    bytes: int
    sha256: str
    """SHA-256 of the Parquet file, so a damaged or edited export is noticed."""
    delta_version: int
    """The Delta version the snapshot pinned for this table."""


@dataclass(frozen=True)
class PinnedAnnotationFile:
    """An annotation file the snapshot's annotation rows came from, as it was when it was attached."""

    uri: str
    version: str
    """S3 VersionId (or ETag); locally size-mtime."""
    sha256: str


@dataclass(frozen=True)
class ExportManifest:
    """Everything needed to trust an export later: the snapshot it is, and every object it refers to."""

    lake: str
    """The lake root the snapshot was read from."""
    seq: int
    kind: str
    partition: str | None
    published_at: str | None
    table_versions: dict[str, int]
    tables: dict[str, ExportedTable]
    objects: list[PinnedObject] = field(default_factory=list)
    """Every active or quarantined media row's object: uri, key, VersionId, ETag, size, SHA-256."""
    exported_at: str = ""
    annotation_files: list[PinnedAnnotationFile] = field(default_factory=list)
    """Every annotation file the snapshot's ``annotations`` rows came from (absent in older manifests)."""
    audit: list[dict[str, Any]] = field(default_factory=list)
    """The audit trail up to the snapshot: every publish event with actor, message, command, merge."""
    branch: str = "main"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "lake": self.lake,
            "snapshot": {
                "seq": self.seq,
                "kind": self.kind,
                "partition": self.partition,
                "published_at": self.published_at,
                "table_versions": dict(self.table_versions),
                "branch": self.branch,
            },
            "exported_at": self.exported_at,
            "tables": {name: t.__dict__ for name, t in self.tables.items()},
            "objects": [o.to_dict() for o in self.objects],
            "annotation_files": [f.__dict__ for f in self.annotation_files],
            "audit": list(self.audit),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportManifest:
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"not a snapshot export manifest (format {data.get('format')!r} v{data.get('format_version')})",
                hint=f"expected {FORMAT} v{FORMAT_VERSION}, as written by `mmp export`",
            )
        snapshot = data["snapshot"]
        return cls(
            lake=data["lake"],
            seq=int(snapshot["seq"]),
            kind=snapshot["kind"],
            partition=snapshot["partition"],
            published_at=snapshot["published_at"],
            table_versions={k: int(v) for k, v in snapshot["table_versions"].items()},
            tables={name: ExportedTable(**t) for name, t in data["tables"].items()},
            objects=[PinnedObject.from_dict(o) for o in data["objects"]],
            exported_at=data.get("exported_at", ""),
            annotation_files=[PinnedAnnotationFile(**f) for f in data.get("annotation_files", [])],
            audit=list(data.get("audit", [])),
            branch=snapshot.get("branch", "main"),
        )

    def write(self, folder: Path) -> Path:
        """Write ``manifest.json`` atomically: its presence means the export is complete."""
        target = folder / MANIFEST_NAME
        tmp = folder / f".{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        return target

    @classmethod
    def read(cls, folder: Path) -> ExportManifest:
        path = folder / MANIFEST_NAME
        try:
            with open(path, encoding="utf-8") as src:
                return cls.from_dict(json.load(src))
        except FileNotFoundError:
            raise ConfigError(
                f"{path} does not exist",
                hint="give the folder that `mmp export --to` wrote (an unfinished export has none)",
            ) from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} is not a valid export manifest: {exc}") from exc
