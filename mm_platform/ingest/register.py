"""Registration by reference: one ``media`` row per object version, bytes hashed once while streamed.

Objects are never copied into the lake; a row records where they are and what they were (size, ETag,
VersionId, SHA-256, type sniffed from content). Every listed object gets a media row, also one that could
not be read (status ``quarantined``, no hash): lineage finds it, and its quarantine row says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from mm_platform.errors import SourceError
from mm_platform.media.sniff import UNKNOWN, sniff
from mm_platform.sources import FetchedObject, ObjectInfo, Source

REGISTER_PRODUCER = "register"
REGISTER_VERSION = "1"
# Enough bytes to sniff any supported format (TGA needs Pillow to look at a header).
SNIFF_BYTES = 64 * 1024


def _lineage(partition: str, run_id: str, sha256: str | None) -> dict[str, object]:
    return {
        "source_content_sha256": sha256,
        "producer": REGISTER_PRODUCER,
        "producer_version": REGISTER_VERSION,
        "run_id": run_id,
        "partition": partition,
    }


def media_row(info: ObjectInfo, fetched: FetchedObject | None, partition: str, run_id: str) -> dict[str, object]:
    """The object's media row; ``fetched=None`` for an object that could not be read (``quarantined``)."""
    if fetched is not None:
        with fetched.open() as stream:
            head = stream.read(SNIFF_BYTES)
        content = sniff(head, info.key)
    else:
        content = UNKNOWN
    sha = fetched.sha256 if fetched is not None else None
    return {
        "media_id": info.media_id,
        "uri": info.uri,
        "source": info.source,
        "key": info.key,
        "etag": info.etag,
        "version_id": info.version_id,
        "size_bytes": fetched.size_bytes if fetched is not None else info.size_bytes,
        "content_sha256": sha,
        "mime_type": content.mime_type,
        "modality": content.modality,
        "last_modified": info.last_modified,
        "status": "active" if fetched is not None else "quarantined",
        "registered_at": datetime.now(UTC),
        **_lineage(partition, run_id, sha),
    }


def fetch_all(
    source: Source, objects: Iterable[ObjectInfo]
) -> Iterator[tuple[ObjectInfo, FetchedObject | SourceError]]:
    """Fetch each object once; an unreadable one yields its error instead of stopping the batch."""
    for info in objects:
        try:
            yield info, source.fetch(info)
        except SourceError as exc:
            if exc.retryable:
                raise  # a throttled or unreachable source: retry the batch, do not quarantine the media
            yield info, exc
