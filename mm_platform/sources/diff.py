"""Compare a source listing with the published media table: what is new, changed, unchanged or deleted.

One pass over each side with dict lookups (O(n)), since a lake may hold millions of media rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.errors import ConfigError
from mm_platform.sources.base import ObjectInfo, Source
from mm_platform.sources.s3 import parse_s3_uri

__all__ = ["DeletedMedia", "ListingDiff", "diff_listing", "object_uri_prefix"]

_REQUIRED_COLUMNS = ("media_id", "uri", "etag", "version_id", "status")


@dataclass(frozen=True)
class DeletedMedia:
    """An active media row whose object is no longer in the source."""

    media_id: str
    """The published row's media id."""
    uri: str
    """The URI the object had."""


@dataclass(frozen=True)
class ListingDiff:
    """A listing sorted into what the pipeline must ingest, re-derive, leave alone or remove."""

    new: list[ObjectInfo] = field(default_factory=list)
    """Objects with no active media row (never seen, or deleted earlier and back now)."""
    changed: list[ObjectInfo] = field(default_factory=list)
    """Objects whose ETag or VersionId differs from their active row (overwritten)."""
    unchanged: list[ObjectInfo] = field(default_factory=list)
    """Objects whose active row has the same ETag and VersionId."""
    deleted: list[DeletedMedia] = field(default_factory=list)
    """Active rows under this source's root whose object was not listed."""

    @property
    def has_work(self) -> bool:
        """Whether anything must be ingested or removed."""
        return bool(self.new or self.changed or self.deleted)


def object_uri_prefix(source_uri: str) -> str:
    """The string every object URI of the source ``source_uri`` starts with.

    ``s3://bucket/pre`` → ``s3://bucket/pre`` (S3 prefixes match partial names, as listing does);
    ``s3://bucket`` → ``s3://bucket/``; a folder ``file:///a/b`` → ``file:///a/b/``.
    """
    if source_uri.startswith("s3://"):
        bucket, prefix = parse_s3_uri(source_uri)
        return f"s3://{bucket}/{prefix}"
    return source_uri if source_uri.endswith("/") else source_uri + "/"


def diff_listing(listing: Iterable[ObjectInfo], published_media: pa.Table, *, source: Source | str) -> ListingDiff:
    """Sort ``listing`` against ``published_media`` (columns ``media_id, uri, etag, version_id, status``).

    ``source`` is the listed source (or its URI): only active rows under it can be reported deleted, so rows
    of other sources are never touched, and an empty listing still reports its deletions. Rows with status
    ``deleted`` count as absent.
    """
    source_uri_prefix = object_uri_prefix(source if isinstance(source, str) else source.uri)
    missing = [name for name in _REQUIRED_COLUMNS if name not in published_media.column_names]
    if missing:
        raise ConfigError(f"published media table lacks columns {missing}")
    # Quarantined objects are registered too: only deleted rows count as absent.
    active = published_media.filter(pc.not_equal(published_media["status"], "deleted"))
    ids: list[str] = active["media_id"].to_pylist()
    etags: list[str | None] = active["etag"].to_pylist()
    versions: list[str | None] = active["version_id"].to_pylist()
    row_of = {media_id: row for row, media_id in enumerate(ids)}
    seen = bytearray(len(ids))

    result = ListingDiff()
    for obj in listing:
        row = row_of.get(obj.media_id)
        if row is None:
            result.new.append(obj)
            continue
        seen[row] = 1
        if obj.etag != etags[row] or obj.version_id != versions[row]:
            result.changed.append(obj)
        else:
            result.unchanged.append(obj)

    under_root = pc.starts_with(active["uri"], pattern=source_uri_prefix).to_pylist()
    uris: list[str] = active["uri"].to_pylist()
    result.deleted.extend(
        DeletedMedia(media_id=ids[row], uri=uris[row]) for row in range(len(ids)) if under_root[row] and not seen[row]
    )
    return result
