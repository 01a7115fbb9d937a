"""Where and as whom to reach S3, and how an ``s3://bucket/prefix`` URI names a bucket and a prefix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from mm_platform.errors import ConfigError

__all__ = ["S3Client", "S3Settings", "parse_s3_uri"]

S3Client = Any  # boto3 clients are generated at runtime; no stubs are installed


@dataclass(frozen=True)
class S3Settings:
    """Where and as whom to reach S3. Passed in explicitly: nothing is read from the environment here."""

    endpoint_url: str | None = None
    """A custom endpoint (MinIO, moto, SeaweedFS); ``None`` means AWS."""
    access_key_id: str | None = None
    """``None`` lets boto3 use its default credential chain."""
    secret_access_key: str | None = None
    """Secret for ``access_key_id``."""
    region: str = "us-east-1"
    """Region used for request signing."""
    connect_timeout_s: float = 10.0
    """Seconds to wait for a TCP connection."""
    read_timeout_s: float = 60.0
    """Seconds to wait for the next bytes of a response."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        """Settings from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
        ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``) in ``env``, a mapping the caller picks (``os.environ``)."""
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )

    def make_client(self) -> S3Client:
        """A boto3 S3 client with botocore's retries off, so :class:`RetryPolicy` is the only one acting."""
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
        )
        # A session per client: boto3's module-level default session is not thread-safe to create lazily.
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=config,
        )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → ``(bucket, prefix)``; the prefix may be empty."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"{uri!r} is not an S3 URI", hint="write it as s3://bucket/prefix")
    return parsed.netloc, uri[len(f"s3://{parsed.netloc}/") :]
