"""Read an annotation file (CSV, TSV, Parquet, JSON Lines, a JSON array), local or on S3, into numbered rows.

The bytes are read once through the media sources (S3 reads pinned to the listed VersionId / ETag, local reads
checked against the listed size and mtime) and hashed while streaming, so the revision records exactly which
version of the file it came from. A record that cannot be parsed (a CSV row with the wrong number of fields,
a JSON line that is not an object) becomes a ``malformed_row`` problem with its row and line number; the rest
of the file is still read. A file that cannot be read at all is an error that names it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mm_platform.annotations.model import FileVersion
from mm_platform.annotations.parse import (
    AnnotationFile,
    normalise_column,
    parse_csv,
    parse_json_array,
    parse_json_lines,
    parse_parquet,
)
from mm_platform.errors import ConfigError, SourceError
from mm_platform.sources import LocalFolderSource, ObjectInfo, S3Settings, S3Source, parse_s3_uri

__all__ = [
    "FORMATS",
    "AnnotationFile",
    "current_sha256",
    "file_format",
    "normalise_column",
    "parse_annotation_bytes",
    "read_annotation_file",
]

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
"""File extension → format."""


def file_format(uri: str) -> str:
    suffix = Path(urlparse(uri).path if "://" in uri else uri).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ConfigError(
            f"cannot tell the format of {uri}",
            hint=f"name the file with one of {', '.join(sorted(FORMATS))}",
        ) from None


def read_annotation_file(location: str, *, s3_settings: S3Settings | None = None) -> AnnotationFile:
    """Read ``location`` (a path, ``file://`` URI or ``s3://bucket/key``) and parse it by its extension."""
    fmt = file_format(location)
    uri, version, sha256, data = (
        _fetch_s3(location, s3_settings) if location.startswith("s3://") else _fetch_local(location)
    )
    return parse_annotation_bytes(data, FileVersion(uri, version, sha256, len(data), fmt))


def current_sha256(location: str, *, s3_settings: S3Settings | None = None) -> str:
    """SHA-256 of the bytes at ``location`` now (to check that a file an export rests on is unchanged)."""
    _, _, sha256, _ = _fetch_s3(location, s3_settings) if location.startswith("s3://") else _fetch_local(location)
    return sha256


def parse_annotation_bytes(data: bytes, version: FileVersion) -> AnnotationFile:
    """Parse bytes already read (their version given) into rows."""
    if version.format == "parquet":
        return parse_parquet(data, version)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{version.uri} is not UTF-8 text ({exc})", hint="save the file as UTF-8") from exc
    if version.format in ("csv", "tsv"):
        return parse_csv(text, version, "\t" if version.format == "tsv" else ",")
    if version.format == "json" and text.lstrip().startswith("["):
        return parse_json_array(text, version)
    return parse_json_lines(text, version)


# --- fetching ------------------------------------------------------------------------------------------------


def _local_path(location: str) -> Path:
    if location.startswith("file:"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"{location!r} names a remote host", hint="file URIs must be local: file:///abs/path")
        return Path(url2pathname(parsed.path))
    if "://" in location:
        raise ConfigError(f"unsupported file URI {location!r}", hint="use a path, file:///path or s3://bucket/key")
    return Path(location).expanduser()


def _fetch_local(location: str) -> tuple[str, str, str, bytes]:
    """(file URI, version, SHA-256, bytes)."""
    path = _local_path(location).resolve()
    if not path.exists():
        raise ConfigError(f"annotation file {path} does not exist", hint="check the path (or the S3 URI)")
    if not path.is_file():
        raise ConfigError(f"{path} is not a file", hint="give one CSV, Parquet or JSON Lines file")
    stat = path.stat()
    info = ObjectInfo(
        uri=path.as_uri(),
        source=path.parent.as_uri(),
        key=path.name,
        size_bytes=stat.st_size,
        etag=f"{stat.st_size}-{stat.st_mtime_ns}",  # what a folder listing (and so the sensor) sees
        version_id=None,
        last_modified=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=UTC),
    )
    with LocalFolderSource(path.parent).fetch(info) as fetched:
        return info.uri, str(info.etag), fetched.sha256, fetched.read_bytes()


def _fetch_s3(location: str, settings: S3Settings | None) -> tuple[str, str, str, bytes]:
    """(object URI, VersionId or ETag, SHA-256, bytes), the bytes pinned to the listed version."""
    bucket, key = parse_s3_uri(location)
    if not key or key.endswith("/"):
        raise ConfigError(f"{location} names no object", hint="give the file's full key: s3://bucket/path/file.csv")
    with S3Source(bucket, key, settings=settings or S3Settings()) as source:
        info = next((o for o in source.list_objects() if o.key == key), None)
        if info is None:
            raise SourceError(f"no object at {location}", hint="check the bucket and key (and the AWS_* settings)")
        with source.fetch(info) as fetched:
            version = info.version_id or info.etag or fetched.sha256
            return info.uri, version, fetched.sha256, fetched.read_bytes()
