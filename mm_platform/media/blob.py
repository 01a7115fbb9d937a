"""The bytes a probe reads: in memory for small objects, a memory-mapped file for large ones.

A multi-GB video must not pass through the main process or a pipe: the main process hands a worker a
:class:`MediaFile` (a path, and the file version that was hashed), and the worker maps the file. Probes
take any buffer (``bytes`` or ``mmap``), slice what they need and read through :func:`as_stream`, which
never copies the buffer (``io.BytesIO`` would copy an ``mmap`` whole).
"""

from __future__ import annotations

import io
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from mm_platform.handoff import MediaFile
from mm_platform.media.quarantine import MediaRejected, QuarantineReason

__all__ = ["Buffer", "MediaFile", "as_stream", "head", "open_media"]

Buffer = bytes | mmap.mmap
"""What probes read: slicing gives ``bytes``, ``len`` the size, :func:`as_stream` a file object."""

HEAD_BYTES = 64 * 1024
"""Enough bytes to sniff any supported format."""


class _BufferReader(io.RawIOBase):
    """A seekable reader over a buffer that shares it (zero copy), with its own position."""

    def __init__(self, buffer: Buffer) -> None:
        super().__init__()
        self._view = memoryview(buffer)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        count = max(0, min(len(target), len(self._view) - self._pos))
        memoryview(target).cast("B")[:count] = self._view[self._pos : self._pos + count]
        self._pos += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._view.release()
        super().close()


def as_stream(data: Buffer) -> io.BufferedReader | io.BytesIO:
    """A new file object over ``data`` at position 0; ``bytes`` are shared, never copied."""
    if isinstance(data, bytes):
        return io.BytesIO(data)  # BytesIO shares an immutable bytes object until written to
    return io.BufferedReader(_BufferReader(data))


def head(data: Buffer, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes (what sniffing needs), without touching the rest of a mapped file."""
    return data if isinstance(data, bytes) and len(data) <= size else bytes(data[:size])


@contextmanager
def open_media(job: bytes | MediaFile) -> Iterator[Buffer]:
    """The buffer for a probe job: bytes as they are, or the file mapped read-only (and checked)."""
    if isinstance(job, bytes):
        yield job
        return
    try:
        fd = os.open(job.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise MediaRejected(QuarantineReason.UNREADABLE, f"cannot open the object: {exc.strerror or exc}") from exc
    try:
        stat = os.fstat(fd)
        if job.expect is not None and (stat.st_size, stat.st_mtime_ns, stat.st_ino) != job.expect:
            raise MediaRejected(QuarantineReason.UNREADABLE, "the file changed after it was hashed; list it again")
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if stat.st_size else None
    finally:
        os.close(fd)  # the mapping keeps its own reference to the file
    if mapped is None:
        yield b""
        return
    try:
        yield mapped
    finally:
        with suppress(BufferError):  # a decoder still holds a view into it: the mapping goes when that does
            mapped.close()
