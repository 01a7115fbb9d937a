"""Ingest batches: bounded sets of object versions, the unit of work, publish and Dagster partition.

A batch's manifest is stored in the lake (``_batches/<id>.json``) so a batch can be re-run exactly, even
after the source has moved on. Never one batch per file: Dagster's UI degrades past ~25k partitions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from mm_platform.errors import ConfigError
from mm_platform.lake.storage import LakeLocation
from mm_platform.sources import DeletedMedia, ObjectInfo

BATCHES_DIR = "_batches"
DEFAULT_MAX_OBJECTS = 1000


@dataclass(frozen=True)
class BatchManifest:
    """What one batch covers: object versions to ingest, or media to erase."""

    batch_id: str
    kind: str
    """``ingest`` (new or overwritten objects) or ``erasure`` (objects deleted at the source)."""
    source: str
    objects: tuple[ObjectInfo, ...] = ()
    deleted: tuple[DeletedMedia, ...] = ()
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "kind": self.kind,
            "source": self.source,
            "created_at": self.created_at,
            "objects": [
                {f.name: getattr(o, f.name) for f in fields(o)} | {"last_modified": o.last_modified.isoformat()}
                for o in self.objects
            ],
            "deleted": [{f.name: getattr(d, f.name) for f in fields(d)} for d in self.deleted],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BatchManifest:
        objects = tuple(
            ObjectInfo(**{**o, "last_modified": datetime.fromisoformat(o["last_modified"])}) for o in doc["objects"]
        )
        return cls(
            batch_id=doc["batch_id"],
            kind=doc["kind"],
            source=doc["source"],
            objects=objects,
            deleted=tuple(DeletedMedia(**d) for d in doc["deleted"]),
            created_at=doc["created_at"],
        )


def _batch_id(kind: str, keys: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:12]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{stamp}-{digest}"


def ingest_batches(
    source: str, objects: Sequence[ObjectInfo], max_objects: int = DEFAULT_MAX_OBJECTS
) -> list[BatchManifest]:
    """Split object versions into bounded ingest batches, in key order."""
    ordered = sorted(objects, key=lambda o: o.key)
    batches = []
    for start in range(0, len(ordered), max_objects):
        chunk = tuple(ordered[start : start + max_objects])
        keys = [f"{o.uri}\0{o.etag}\0{o.version_id}" for o in chunk]
        batches.append(BatchManifest(batch_id=_batch_id("ingest", keys), kind="ingest", source=source, objects=chunk))
    return batches


def erasure_batch(source: str, deleted: Sequence[DeletedMedia]) -> BatchManifest:
    keys = [d.media_id for d in deleted]
    return BatchManifest(batch_id=_batch_id("erasure", keys), kind="erasure", source=source, deleted=tuple(deleted))


def save_manifest(location: LakeLocation, manifest: BatchManifest) -> None:
    location.write_json(f"{BATCHES_DIR}/{manifest.batch_id}.json", manifest.to_json())


def load_manifest(location: LakeLocation, batch_id: str) -> BatchManifest:
    doc = location.read_json(f"{BATCHES_DIR}/{batch_id}.json")
    if doc is None:
        raise ConfigError(
            f"no manifest for batch {batch_id} in {location.root}",
            hint="batches are created by the sensors or `mmp ingest`; check the lake (--lake / MM_LAKE)",
        )
    return BatchManifest.from_json(doc)
