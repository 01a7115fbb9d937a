"""Media sources (a local folder, an S3 bucket/prefix): deterministic listings, single-pass hashed reads,
and the diff of a listing against the published media table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mm_platform.errors import ConfigError
from mm_platform.sources.base import DEFAULT_SPOOL_MAX_BYTES, FetchedObject, ObjectInfo, Source
from mm_platform.sources.diff import DeletedMedia, ListingDiff, diff_listing, object_uri_prefix
from mm_platform.sources.local import LocalFolderSource
from mm_platform.sources.retry import AttemptCounter, RetryPolicy
from mm_platform.sources.s3 import S3Source
from mm_platform.sources.s3_settings import S3Settings, parse_s3_uri

__all__ = [
    "AttemptCounter",
    "DeletedMedia",
    "FetchedObject",
    "ListingDiff",
    "LocalFolderSource",
    "ObjectInfo",
    "RetryPolicy",
    "S3Settings",
    "S3Source",
    "Source",
    "diff_listing",
    "object_uri_prefix",
    "parse_s3_uri",
    "source_for",
    "source_from_uri",
]


def source_from_uri(
    uri: str,
    *,
    s3_settings: S3Settings | None = None,
    s3_endpoint_url: str | None = None,
    retry_policy: RetryPolicy | None = None,
    spool_max_bytes: int | None = None,
) -> Source:
    """``s3://bucket/prefix`` → :class:`S3Source`; a path or ``file://`` URI → :class:`LocalFolderSource`.

    S3 settings come from the caller (the CLI reads the environment at its boundary); ``s3_endpoint_url``
    overrides the endpoint in ``s3_settings``. ``spool_max_bytes``: objects up to it are held in memory
    (None: each source's default; an S3 object must be downloaded, a local file can be read in place).
    """
    if not uri:
        raise ConfigError("empty source URI", hint="give a folder path, file:///path or s3://bucket/prefix")
    if uri.startswith("s3://"):
        bucket, prefix = parse_s3_uri(uri)
        settings = s3_settings or S3Settings()
        if s3_endpoint_url is not None:
            settings = replace(settings, endpoint_url=s3_endpoint_url)
        s3_spool = DEFAULT_SPOOL_MAX_BYTES if spool_max_bytes is None else spool_max_bytes
        return S3Source(bucket, prefix, settings=settings, retry_policy=retry_policy, spool_max_bytes=s3_spool)
    if uri.startswith("file:"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"{uri!r} names a remote host", hint="file URIs must be local: file:///abs/path")
        path = Path(url2pathname(parsed.path))
    elif "://" in uri:
        # A typo'd or unsupported scheme (gs://, http://) must not silently become a local folder name.
        raise ConfigError(
            f"unsupported source URI {uri!r}", hint="use a folder path, file:///path or s3://bucket/prefix"
        )
    else:
        path = Path(uri)
    if spool_max_bytes is None:  # the local default: files over 1 MiB are read in place
        return LocalFolderSource(path)
    return LocalFolderSource(path, spool_max_bytes=spool_max_bytes)


def source_for(uri: str, env: Mapping[str, str]) -> Source:
    """The source at ``uri``, its S3 settings (when it is ``s3://``) taken from ``env`` (the ``AWS_*`` variables
    of a mapping the caller chose at its boundary: the CLI's environment, a resource's configuration)."""
    settings = S3Settings.from_env(env) if uri.startswith("s3://") else None
    return source_from_uri(uri, s3_settings=settings)
