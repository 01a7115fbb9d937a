"""One object version as a source listed it: the unit every listing, diff and batch manifest speaks of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from mm_platform.ids import media_id_for

__all__ = ["ObjectInfo"]


@dataclass(frozen=True)
class ObjectInfo:
    """One object version as a source listed it (no bytes read yet)."""

    uri: str
    """Where the object lives: ``file:///abs/path/x.jpg`` (percent-encoded) or ``s3://bucket/key``."""
    source: str
    """The root URI that was listed: ``file:///abs/root`` or ``s3://bucket/prefix``."""
    key: str
    """Local: the path relative to the source root, ``/``-separated. S3: the full object key."""
    size_bytes: int
    """Size in bytes at listing time; a read that returns another count fails."""
    etag: str | None
    """S3: the ETag without quotes. Local: the fingerprint ``<size>-<mtime_ns>`` (changes with the file)."""
    version_id: str | None
    """S3 VersionId from the listing on a versioned bucket; ``None`` otherwise."""
    last_modified: datetime
    """Last modification time, timezone-aware UTC."""

    @cached_property  # hashed once: diffs of a million-object listing read it per object
    def media_id(self) -> str:
        """The stable id that follows this object's URI (see :func:`mm_platform.ids.media_id_for`)."""
        return media_id_for(self.uri)
