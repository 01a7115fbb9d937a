"""What a lineage answer holds: plain frozen values with ``to_dict`` for JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["EmbeddingLineage", "MediaLineage", "ObjectVersion", "RowLineage", "SnapshotPresence", "SourceVersion"]


def _jsonable(value: Any) -> Any:
    """Lineage values as JSON's: datetimes as ISO text, nested records through their ``to_dict``."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class SourceVersion(_ToDict):
    """The source object version a media row records (the bytes everything else derives from)."""

    media_id: str
    uri: str
    key: str
    etag: str | None
    version_id: str | None
    content_sha256: str | None
    size_bytes: int
    mime_type: str | None
    modality: str | None
    status: str
    last_modified: datetime | None
    registered_at: datetime | None
    run_id: str
    partition: str


@dataclass(frozen=True)
class RowLineage(_ToDict):
    """Who produced one row, from which bytes, in which run, batch and publish."""

    table: str
    row_id: str
    """metadata: the media id; derived: the derived id; embeddings: the subject id."""
    producer: str
    producer_version: str
    run_id: str
    partition: str
    source_content_sha256: str | None
    publish_seq: int | None
    """The publish that made its partition visible (the latest one at or before the snapshot read)."""
    matches_content: bool
    """Whether ``source_content_sha256`` is the media row's current content hash (False = stale row)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Per table: derived kind/ordinal/label/score; embeddings model/revision/dim/subject kind."""


@dataclass(frozen=True)
class SnapshotPresence(_ToDict):
    """A published snapshot that holds the media row, and the version of the object it holds."""

    seq: int
    kind: str
    partition: str | None
    published_at: datetime | None
    media_table_version: int
    content_sha256: str | None
    etag: str | None
    status: str


@dataclass(frozen=True)
class ObjectVersion(_ToDict):
    """One run of snapshots that held the same bytes of an object (its history across overwrites)."""

    content_sha256: str | None
    etag: str | None
    seqs: list[int]
    """The snapshots that held these bytes (consecutive or not), oldest first."""
    current: bool
    """Whether these are the bytes of the snapshot the lineage was read from."""
    status: str
    """The media row's status in the last of those snapshots (``active``, ``quarantined``, ``deleted``)."""


@dataclass(frozen=True)
class MediaLineage(_ToDict):
    """Source object → metadata → derived rows → embeddings → the snapshots that contain it."""

    snapshot_seq: int
    source: SourceVersion
    metadata: RowLineage | None
    derived: list[RowLineage]
    embeddings: list[RowLineage]
    quarantine: RowLineage | None
    snapshots: list[SnapshotPresence]
    versions: list[ObjectVersion] = field(default_factory=list)
    """The object's distinct bytes across ``snapshots``, oldest first: "snapshot 1 held other bytes"."""


@dataclass(frozen=True)
class EmbeddingLineage(_ToDict):
    """From one vector back to the bytes it was computed from."""

    snapshot_seq: int
    embedding: RowLineage
    subject: RowLineage | None
    """For a keyframe or text-chunk vector: the derived row it embeds (None for a media-level vector)."""
    source: SourceVersion
    content_matches: bool
    """The vector was computed from the bytes the media row records now (hash equality)."""
