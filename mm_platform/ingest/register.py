"""Registration by reference: one ``media`` row per object version, bytes hashed once while streamed.

Objects are never copied into the lake; a row records where they are and what they were (size, ETag,
VersionId, SHA-256, type sniffed from content). An object that cannot be read becomes a ``quarantine``
row with the reason, and the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from mm_platform.errors import SourceError
from mm_platform.lake.schemas import MEDIA, QUARANTINE
from mm_platform.log import get_logger, kv
from mm_platform.media.sniff import sniff
from mm_platform.sources import FetchedObject, ObjectInfo, Source

REGISTER_PRODUCER = "register"
REGISTER_VERSION = "1"
# Enough bytes to sniff any supported format (TGA needs Pillow to look at a header).
SNIFF_BYTES = 64 * 1024

log = get_logger("mm_platform.ingest.register")


@dataclass
class RegisteredBatch:
    """The rows one batch of objects produced."""

    media: list[dict[str, object]] = field(default_factory=list)
    quarantine: list[dict[str, object]] = field(default_factory=list)

    def media_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.media, schema=MEDIA.schema)

    def quarantine_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.quarantine, schema=QUARANTINE.schema)


def _lineage(partition: str, run_id: str, sha256: str | None) -> dict[str, object]:
    return {
        "source_content_sha256": sha256,
        "producer": REGISTER_PRODUCER,
        "producer_version": REGISTER_VERSION,
        "run_id": run_id,
        "partition": partition,
    }


def media_row(info: ObjectInfo, fetched: FetchedObject, partition: str, run_id: str) -> dict[str, object]:
    with fetched.open() as stream:
        head = stream.read(SNIFF_BYTES)
    content = sniff(head, info.key)
    return {
        "media_id": info.media_id,
        "uri": info.uri,
        "source": info.source,
        "key": info.key,
        "etag": info.etag,
        "version_id": info.version_id,
        "size_bytes": fetched.size_bytes,
        "content_sha256": fetched.sha256,
        "mime_type": content.mime_type,
        "modality": content.modality,
        "last_modified": info.last_modified,
        "status": "active",
        "registered_at": datetime.now(UTC),
        **_lineage(partition, run_id, fetched.sha256),
    }


def quarantine_row(
    info: ObjectInfo, stage: str, reason: str, detail: str, partition: str, run_id: str, sha256: str | None = None
) -> dict[str, object]:
    return {
        "media_id": info.media_id,
        "uri": info.uri,
        "content_sha256": sha256,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "quarantined_at": datetime.now(UTC),
        **_lineage(partition, run_id, sha256),
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


def register_objects(source: Source, objects: Iterable[ObjectInfo], partition: str, run_id: str) -> RegisteredBatch:
    """Register objects by reference; unreadable ones are quarantined with the reason."""
    batch = RegisteredBatch()
    for info, fetched in fetch_all(source, objects):
        if isinstance(fetched, SourceError):
            batch.quarantine.append(quarantine_row(info, "register", "unreadable", fetched.message, partition, run_id))
            continue
        with fetched:
            batch.media.append(media_row(info, fetched, partition, run_id))
    log.info("registered %s", kv(partition=partition, media=len(batch.media), quarantined=len(batch.quarantine)))
    return batch
