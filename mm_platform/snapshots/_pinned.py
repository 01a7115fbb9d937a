"""Source objects as a snapshot pins them, and reading exactly those bytes back.

A media row records where an object lives and what it was (size, ETag, VersionId, SHA-256). Rebuilt as the
listing entry it came from, it makes the source read that version (S3: by VersionId, or with If-Match on
the ETag), and the SHA-256 computed while streaming proves the bytes are the ones the snapshot describes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.errors import SourceChangedError
from mm_platform.lake import Snapshot
from mm_platform.sources import FetchedObject, ObjectInfo, S3Settings, Source, source_from_uri
from mm_platform.tables import MEDIA

__all__ = ["PINNED_STATUSES", "PinnedObject", "SourcePool", "fetch_pinned", "pinned_objects"]

PINNED_STATUSES = ("active", "quarantined")
"""Media rows whose objects a snapshot still refers to (``deleted`` rows are tombstones)."""

MEDIA_COLUMNS = [
    "media_id",
    "uri",
    "source",
    "key",
    "size_bytes",
    "etag",
    "version_id",
    "content_sha256",
    "last_modified",
    "status",
]


@dataclass(frozen=True)
class PinnedObject:
    """One source object version that a snapshot refers to."""

    media_id: str
    uri: str
    source: str
    """The root URI the object was listed under (``file:///root`` or ``s3://bucket/prefix``)."""
    key: str
    size_bytes: int
    etag: str | None
    version_id: str | None
    sha256: str | None
    """SHA-256 of the bytes, computed while they were streamed at ingest (``None`` if never read)."""
    last_modified: datetime
    status: str

    def object_info(self) -> ObjectInfo:
        """The listing entry this version came from: fetching it reads this version or fails."""
        return ObjectInfo(
            uri=self.uri,
            source=self.source,
            key=self.key,
            size_bytes=self.size_bytes,
            etag=self.etag,
            version_id=self.version_id,
            last_modified=self.last_modified,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "last_modified": self.last_modified.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PinnedObject:
        values = dict(data)
        values["last_modified"] = datetime.fromisoformat(str(values["last_modified"]))
        return cls(**values)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PinnedObject:
        return cls(
            media_id=row["media_id"],
            uri=row["uri"],
            source=row["source"],
            key=row["key"],
            size_bytes=int(row["size_bytes"]),
            etag=row["etag"],
            version_id=row["version_id"],
            sha256=row["content_sha256"],
            last_modified=row["last_modified"],
            status=row["status"],
        )


def pinned_objects(snapshot: Snapshot, statuses: tuple[str, ...] = PINNED_STATUSES) -> list[PinnedObject]:
    """The objects the snapshot's media rows refer to, sorted by URI."""
    media = snapshot.table(
        MEDIA.name, columns=MEDIA_COLUMNS, filter=pc.field("status").isin(pa.array(statuses, pa.string()))
    )
    media = media.sort_by([("uri", "ascending")])
    return [PinnedObject.from_row(row) for row in media.to_pylist()]


def fetch_pinned(source: Source, obj: PinnedObject | ObjectInfo, expected_sha256: str | None) -> FetchedObject:
    """Read the object's bytes; raise :class:`SourceChangedError` unless their SHA-256 is ``expected_sha256``.

    The caller closes the returned object. ``expected_sha256=None`` skips the content check.
    """
    info = obj.object_info() if isinstance(obj, PinnedObject) else obj
    try:
        fetched = source.fetch(info)
    except SourceChangedError as exc:
        # Another size, a failed If-Match, a vanished version: the source's own "list again" does not apply.
        raise _changed(info, exc.message) from exc
    if expected_sha256 is not None and fetched.sha256 != expected_sha256:
        fetched.close()
        raise _changed(info, f"sha256 {fetched.sha256[:12]}…, expected {expected_sha256[:12]}…")
    return fetched


def _changed(info: ObjectInfo, detail: str) -> SourceChangedError:
    return SourceChangedError(
        f"{info.uri} no longer holds the pinned bytes ({detail})",
        hint="the object was overwritten or deleted after the snapshot; ingest it again, or use another snapshot",
    )


class SourcePool:
    """Sources opened lazily by root URI, once per process.

    Safe to pickle and to inherit across ``fork`` (DataLoader workers): a child process opens its own
    sources, because a boto3 client must not be shared across processes.
    """

    def __init__(self, s3_settings: S3Settings | None = None) -> None:
        self.s3_settings = s3_settings
        self._sources: dict[str, Source] = {}
        self._pid = os.getpid()

    def get(self, root: str) -> Source:
        if self._pid != os.getpid():
            self._sources, self._pid = {}, os.getpid()  # forked: the parent's clients are not ours
        source = self._sources.get(root)
        if source is None:
            source = source_from_uri(root, s3_settings=self.s3_settings)
            self._sources[root] = source
        return source

    def close(self) -> None:
        if self._pid == os.getpid():
            for source in self._sources.values():
                source.close()
        self._sources = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"s3_settings": self.s3_settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["s3_settings"])  # type: ignore[misc]
