"""One error hierarchy for the platform.

Every error says what failed (table, partition, check, file) and what to do about it; ``retryable`` tells a
caller (a Dagster retry policy, the CLI's backoff loop) whether trying again can help.
"""

from __future__ import annotations


class MMPlatformError(Exception):
    """Base of every error raised by mm_platform."""

    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} — {hint}")


class ConfigError(MMPlatformError):
    """The lake location, a source or an option is missing or invalid."""


class LakeNotFoundError(MMPlatformError):
    """No lake exists at the given location."""


class SnapshotNotFoundError(MMPlatformError):
    """No published snapshot matches the requested sequence number or time."""


class SnapshotExpiredError(MMPlatformError):
    """The snapshot's files were removed by vacuum; it can no longer be read."""


class StageError(MMPlatformError):
    """Rows could not be staged: they do not fit the table's schema or break its key."""


class StaleStageError(MMPlatformError):
    """The tables changed since the stage was built (a file it replaces is gone); stage again."""

    retryable = True


class AuditFailedError(MMPlatformError):
    """An audit check rejected a staged partition; nothing was published."""

    def __init__(self, message: str, *, partition: str, failures: list[dict[str, object]]) -> None:
        self.partition = partition
        self.failures = failures
        super().__init__(
            message,
            hint="fix the input or the producer, then publish the partition again; the previous snapshot is unchanged",
        )


class PublishConflictError(MMPlatformError):
    """Another publisher kept winning the race for the publish log; the bounded retries ran out."""

    retryable = True


class StorageError(MMPlatformError):
    """The object store or file system failed; often transient."""

    retryable = True


class SourceError(MMPlatformError):
    """A media source (S3 bucket, local folder) could not be listed or read."""


class TransientSourceError(SourceError):
    """A source answered with a throttle, a 5xx or a dropped connection; retrying can help."""

    retryable = True


class SourceChangedError(SourceError):
    """An object changed between listing and reading (size, ETag or version); list the source again.

    Not retryable as such: reading the same listing entry again cannot succeed, a fresh listing can.
    """
