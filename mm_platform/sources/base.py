"""What every media source offers: a deterministic listing and one streaming read that hashes as it goes."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import pyarrow as pa

from mm_platform.errors import SourceChangedError
from mm_platform.handoff import MediaFile
from mm_platform.sources.listing import DEFAULT_CHUNK_KEYS, table_chunks
from mm_platform.sources.object_info import ObjectInfo
from mm_platform.sources.pinned_file import PinnedFile

__all__ = [
    "DEFAULT_SPOOL_MAX_BYTES",
    "FetchedObject",
    "ObjectInfo",
    "PinnedFile",
    "Source",
    "check_listed_size",
    "spool_chunks",
]

DEFAULT_SPOOL_MAX_BYTES = 32 * 1024 * 1024
"""Objects up to this size stay in memory; larger ones are spooled to a temporary file (S3) or re-read in
place (local files, see :class:`PinnedFile`)."""

CHUNK_BYTES = 1024 * 1024


class FetchedObject:
    """The bytes of one object, read once, with their SHA-256.

    They are held in memory when small; a large S3 object is spooled to a temp file, and a large local file
    is not copied at all: it is re-read in place and checked against the version that was hashed
    (:class:`PinnedFile`). Close the object (or use it as a context manager) to delete the temporary file.
    """

    def __init__(
        self,
        info: ObjectInfo,
        sha256: str,
        size_bytes: int,
        *,
        data: bytes | None = None,
        path: Path | None = None,
        pinned: PinnedFile | None = None,
    ) -> None:
        """Give exactly one of ``data`` (in memory), ``path`` (a temp file this object owns and deletes) and
        ``pinned`` (a source file it only reads)."""
        if sum(backing is not None for backing in (data, path, pinned)) != 1:
            raise ValueError("exactly one of data, path and pinned must be given")
        self.info = info
        self.sha256 = sha256
        self.size_bytes = size_bytes
        self._data = data
        self._path = path
        self._pinned = pinned
        self._closed = False

    @property
    def spooled_to_disk(self) -> bool:
        """Whether the bytes were copied to a temporary file (not in memory, not read in place)."""
        return self._path is not None

    @property
    def read_in_place(self) -> bool:
        """Whether reads go back to the source file itself (a large local file, never copied)."""
        return self._pinned is not None

    def read_bytes(self) -> bytes:
        """All the bytes (loads a spooled or pinned file into memory).

        Raises :class:`SourceChangedError` if a pinned source file changed since it was hashed, even while
        this read was under way.
        """
        with self.open() as stream:
            data = stream.read()
            if self._pinned is not None:
                self._pinned.check_unchanged(stream, self.info.uri)
            return data

    def handoff(self) -> bytes | MediaFile:
        """What a probe worker gets: the bytes when they are in memory, else the file to map in place.

        Large objects never travel through the main process or a pipe; a source file read in place carries
        the version that was hashed, which the worker checks before reading.
        """
        self._check_open()
        if self._data is not None:
            return self._data
        if self._path is not None:
            return MediaFile(str(self._path), self.size_bytes)
        assert self._pinned is not None
        pinned = self._pinned
        return MediaFile(pinned.path, self.size_bytes, (pinned.size, pinned.mtime_ns, pinned.inode))

    def open(self) -> BinaryIO:
        """A new, independent reader positioned at the start; closing it leaves this object usable.

        For a pinned source file, raises :class:`SourceChangedError` if the file changed since it was hashed.
        A change made while the caller reads from the returned stream is not detected (``read_bytes`` is).
        """
        self._check_open()
        if self._pinned is not None:
            return self._pinned.open(self.info.uri)
        if self._path is not None:
            return open(self._path, "rb")
        assert self._data is not None
        return io.BytesIO(self._data)  # shares the immutable bytes until written: no copy

    def close(self) -> None:
        """Release the bytes and delete the temporary file, if any. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._data = None
        self._pinned = None  # not ours to delete: only forget it
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "source file" if self.read_in_place else "disk" if self.spooled_to_disk else "memory"
        return f"FetchedObject(uri={self.info.uri!r}, size_bytes={self.size_bytes}, in {where})"

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"FetchedObject for {self.info.uri} is closed")


def check_listed_size(info: ObjectInfo, size: int) -> None:
    """Raise :class:`SourceChangedError` when ``size`` bytes were read but the listing said otherwise."""
    if size != info.size_bytes:
        raise SourceChangedError(
            f"read {size} bytes from {info.uri} but the listing said {info.size_bytes}",
            hint="the object changed after it was listed; list the source again",
        )


def spool_chunks(
    info: ObjectInfo, chunks: Iterable[bytes], *, spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
) -> FetchedObject:
    """Copy ``chunks`` into memory or a temp file, hashing them as they pass, and check the byte count.

    Raises :class:`SourceChangedError` when the count differs from the listed size. Any error while reading
    ``chunks`` removes the partial temp file and propagates, so a caller can retry from the start.
    """
    hasher = hashlib.sha256()
    held: list[bytes] = []  # chunks kept as they came: joined once at the end, never grown chunk by chunk
    held_bytes = 0
    spill: tempfile._TemporaryFileWrapper[bytes] | None = None
    size = 0
    try:
        if info.size_bytes > spool_max_bytes:
            # The listing already says it will not fit in memory: stream straight to disk.
            spill = tempfile.NamedTemporaryFile(prefix="mmp-fetch-", delete=False)  # noqa: SIM115
        for chunk in chunks:
            hasher.update(chunk)
            size += len(chunk)
            if spill is not None:
                spill.write(chunk)
            elif held_bytes + len(chunk) > spool_max_bytes:
                # Past the threshold: move what we have to disk and keep streaming there.
                spill = tempfile.NamedTemporaryFile(prefix="mmp-fetch-", delete=False)  # noqa: SIM115
                spill.writelines(held)
                spill.write(chunk)
                held = []
            else:
                held.append(chunk)
                held_bytes += len(chunk)
        check_listed_size(info, size)
    except BaseException:
        if spill is not None:
            spill.close()
            os.unlink(spill.name)
        raise
    if spill is not None:
        spill.close()
        return FetchedObject(info, hasher.hexdigest(), size, data=None, path=Path(spill.name))
    # One chunk (most files) is kept as is: no copy at all.
    data = held[0] if len(held) == 1 and type(held[0]) is bytes else b"".join(held)
    return FetchedObject(info, hasher.hexdigest(), size, data=data, path=None)


class Source(ABC):
    """A place media comes from. Implementations: a local folder, an S3 bucket/prefix."""

    uri: str
    """The root URI this source lists (``file:///abs/root`` or ``s3://bucket/prefix``)."""

    @abstractmethod
    def list_objects(self, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under the root, sorted by key, so two listings of the same state are identical.

        ``start_after``: only keys sorting after it (a paged listing resuming where the last page ended)."""

    def list_tables(self, start_after: str | None = None, chunk_keys: int = DEFAULT_CHUNK_KEYS) -> Iterator[pa.Table]:
        """The same listing as key-sorted tables of :data:`~mm_platform.sources.listing.LISTING_SCHEMA`, at most
        ``chunk_keys`` rows each (none when nothing is listed): what discovery diffs. By default built from
        :meth:`list_objects`; a source that can list in columns directly (a local folder) does."""
        return table_chunks(self.list_objects(start_after), chunk_keys)

    @abstractmethod
    def fetch(self, obj: ObjectInfo) -> FetchedObject:
        """Read ``obj``'s bytes once, hashing while streaming; raises a ``SourceError`` naming the object."""

    def close(self) -> None:  # noqa: B027 - optional hook: most sources hold nothing
        """Release connections or other resources held by the source (none by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
