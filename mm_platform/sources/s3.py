"""An S3 bucket/prefix as a media source: paged listing (versions when the bucket is versioned) and reads
pinned to the listed version, all under one retry policy of our own."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from functools import partial
from typing import Any

import botocore.exceptions as bex
from urllib3.exceptions import ProtocolError

from mm_platform.errors import (
    ConfigError,
    MMPlatformError,
    SourceChangedError,
    SourceError,
    TransientSourceError,
)
from mm_platform.sources.base import (
    CHUNK_BYTES,
    DEFAULT_SPOOL_MAX_BYTES,
    FetchedObject,
    ObjectInfo,
    Source,
    spool_chunks,
)
from mm_platform.sources.retry import AttemptCounter, RetryPolicy, call_with_retry
from mm_platform.sources.s3_settings import S3Client, S3Settings, parse_s3_uri

__all__ = ["S3Settings", "S3Source", "parse_s3_uri"]

_THROTTLE_OR_TIMEOUT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "InternalError",
        "ServiceUnavailable",
    }
)
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "InvalidToken",
        "ExpiredToken",
    }
)
_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "PreconditionFailed", "412"})
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    bex.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError
    bex.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
    bex.IncompleteReadError,
    ProtocolError,
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
)


class S3Source(Source):
    """Objects under ``s3://bucket/prefix``.

    Listing uses ListObjectVersions on a versioned bucket (keeping each key's latest, non-deleted version, so
    the VersionId comes from the listing, not from a HEAD per object) and ListObjectsV2 otherwise, page by
    page, each page retried on its own. Reads pin the listed VersionId (or the listed ETag via If-Match), so
    the bytes always match the listing entry, and a read that breaks mid-body restarts and re-hashes.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        settings: S3Settings | None = None,
        client_factory: Callable[[], S3Client] | None = None,
        retry_policy: RetryPolicy | None = None,
        page_size: int = 1000,
        versioned: bool | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
    ) -> None:
        """``client_factory`` replaces ``settings`` (it should turn botocore's retries off likewise);
        ``versioned=None`` asks the bucket once per listing."""
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}", hint="write the source as s3://bucket/prefix")
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"page_size must be between 1 and 1000, got {page_size}")
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.settings = settings or S3Settings()
        self.retry_policy = retry_policy or RetryPolicy()
        self.page_size = page_size
        self.versioned = versioned
        self.spool_max_bytes = spool_max_bytes
        self.attempts = AttemptCounter()
        """Attempts made per S3 operation (``ListObjectsV2``, ``GetObject`` …), retries included."""
        self._client_factory = client_factory or self.settings.make_client
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()  # fetches may run in threads; build one shared client

    @property
    def client(self) -> S3Client:
        with self._client_lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def list_objects(self, start_after: str | None = None) -> Iterator[ObjectInfo]:
        entries = self._list_latest_versions(start_after) if self._is_versioned() else self._list_current(start_after)
        previous = ""
        for info in entries:
            # S3 promises keys in ascending UTF-8 order (= Python str order); a store that breaks this would
            # make listings non-deterministic, so say so rather than continue.
            if info.key < previous:
                raise SourceError(f"{self.uri} listed {info.key!r} after {previous!r}: keys are not sorted")
            previous = info.key
            if info.key.endswith("/") and info.size_bytes == 0:
                continue  # a "folder" marker that consoles and sync tools create: not media
            yield info

    def fetch(self, obj: ObjectInfo) -> FetchedObject:
        if obj.source != self.uri:
            raise SourceError(f"{obj.uri} was listed by {obj.source}, not by this source ({self.uri})")
        params: dict[str, str] = {"Bucket": self.bucket, "Key": obj.key}
        if obj.version_id is not None:
            params["VersionId"] = obj.version_id
        elif obj.etag is not None:
            params["IfMatch"] = f'"{obj.etag}"'  # unversioned: refuse bytes other than the listed ones

        def read_once() -> FetchedObject:
            response = self.client.get_object(**params)
            body = response["Body"]
            try:
                length = response.get("ContentLength")
                if length is not None and length != obj.size_bytes:
                    raise SourceChangedError(
                        f"{obj.uri} is {length} bytes now but was {obj.size_bytes} when listed",
                        hint="the object changed after it was listed; list the source again",
                    )
                return spool_chunks(obj, body.iter_chunks(CHUNK_BYTES), spool_max_bytes=self.spool_max_bytes)
            finally:
                body.close()

        return self._call("GetObject", read_once, what=obj.uri)

    def _call(self, operation: str, fn: Callable[[], Any], *, what: str) -> Any:
        return call_with_retry(
            operation,
            fn,
            policy=self.retry_policy,
            translate=lambda exc: self._translate(exc, operation, what),
            what=what,
            counter=self.attempts,
        )

    def _is_versioned(self) -> bool:
        if self.versioned is not None:
            return self.versioned
        answer = self._call(
            "GetBucketVersioning",
            lambda: self.client.get_bucket_versioning(Bucket=self.bucket),
            what=self.uri,
        )
        # "Suspended" buckets still hold versions; listing versions keeps their ids right.
        return answer.get("Status") in ("Enabled", "Suspended")

    def _list_current(self, start_after: str | None = None) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix, "MaxKeys": self.page_size}
        if start_after:
            params["StartAfter"] = start_after
        while True:
            # Paging by hand (not a botocore paginator): a failed page is retried alone, the walk resumes.
            page = self._call("ListObjectsV2", partial(self.client.list_objects_v2, **params), what=self.uri)
            for item in page.get("Contents", []):
                yield self._info(item, version_id=None)
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def _list_latest_versions(self, start_after: str | None = None) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix, "MaxKeys": self.page_size}
        if start_after:
            params["KeyMarker"] = start_after  # versions of keys after the marker (the marker's own are done)
        while True:
            page = self._call("ListObjectVersions", partial(self.client.list_object_versions, **params), what=self.uri)
            # Deleted keys have a delete marker as their latest version, so none of their Versions is latest.
            for item in page.get("Versions", []):
                if item.get("IsLatest"):
                    version = item.get("VersionId")
                    yield self._info(item, version_id=None if version in (None, "null") else version)
            if not page.get("IsTruncated"):
                return
            params["KeyMarker"] = page["NextKeyMarker"]
            params["VersionIdMarker"] = page["NextVersionIdMarker"]

    def _info(self, item: Mapping[str, Any], *, version_id: str | None) -> ObjectInfo:
        etag = item.get("ETag")
        return ObjectInfo(
            uri=f"s3://{self.bucket}/{item['Key']}",
            source=self.uri,
            key=item["Key"],
            size_bytes=int(item["Size"]),
            etag=etag.strip('"') if etag else None,
            version_id=version_id,
            last_modified=item["LastModified"].astimezone(UTC),
        )

    def _translate(self, exc: Exception, operation: str, what: str) -> MMPlatformError | None:
        """Map a boto/urllib3 error to a platform error; retryable ones are those where waiting can help."""
        where = f" at {self.settings.endpoint_url}" if self.settings.endpoint_url else ""
        if isinstance(exc, bex.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            detail = f"{operation} on {what}: {code or status} {error.get('Message', '')}".rstrip()
            if code in _THROTTLE_OR_TIMEOUT_CODES or status >= 500 or status == 429:
                return TransientSourceError(detail)
            if code == "NoSuchBucket":
                return SourceError(
                    f"bucket {self.bucket!r} does not exist{where}",
                    hint="check the bucket name in the source URI and the S3 endpoint/region",
                )
            if code in _ACCESS_CODES or status == 403:
                return SourceError(
                    f"access to bucket {self.bucket!r}{where} was denied ({code or status})",
                    hint="check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and that they "
                    "may list and read this bucket",
                )
            if code in _GONE_CODES or (operation == "GetObject" and status == 404):
                return SourceChangedError(
                    f"{what} changed or was deleted after it was listed ({code or status})",
                    hint="list the source again",
                )
            return SourceError(detail)
        if isinstance(exc, _CONNECTION_ERRORS):
            return TransientSourceError(f"{operation} on {what}{where}: connection failed: {exc}")
        if isinstance(exc, bex.NoCredentialsError):
            return SourceError(
                f"no S3 credentials found for bucket {self.bucket!r}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        if isinstance(exc, bex.BotoCoreError):
            return SourceError(f"{operation} on {what}{where} failed: {exc}")
        return None
