"""An image query from where a user keeps it: a local file or ``s3://bucket/key`` (read with the source layer's
retries and version pinning, like every other object the platform reads)."""

from __future__ import annotations

from pathlib import Path

from mm_platform.errors import ConfigError, SourceError
from mm_platform.sources import S3Settings, S3Source, parse_s3_uri

__all__ = ["read_query_image"]

MAX_QUERY_BYTES = 64 * 1024 * 1024
"""An image query larger than this is refused (a search needs a picture, not a dump)."""


def read_query_image(ref: str, s3_settings: S3Settings | None = None) -> bytes | Path:
    """The query's bytes (``s3://…``) or its path (a local file, read later by the search)."""
    if not ref.startswith("s3://"):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise ConfigError(f"no image file at {ref}", hint="give a local image file or s3://bucket/key")
        return path
    bucket, key = parse_s3_uri(ref)
    if not key or key.endswith("/"):
        raise ConfigError(f"{ref} names no object", hint="give the image's full key: s3://bucket/path/photo.jpg")
    with S3Source(bucket, key, settings=s3_settings or S3Settings()) as source:
        info = next((o for o in source.list_objects() if o.key == key), None)
        if info is None:
            raise SourceError(f"no object at {ref}", hint="check the bucket and key (and the AWS_* settings)")
        if info.size_bytes > MAX_QUERY_BYTES:
            hint = f"query with an image under {MAX_QUERY_BYTES} bytes"
            raise ConfigError(f"{ref} is {info.size_bytes} bytes", hint=hint)
        with source.fetch(info) as fetched:
            return fetched.read_bytes()
