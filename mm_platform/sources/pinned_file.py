"""A local file hashed in place, pinned to the version that was hashed (a later read that finds another
version fails rather than returning bytes the hash does not describe)."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO

from mm_platform.errors import SourceChangedError, SourceError

__all__ = ["PinnedFile"]


@dataclass(frozen=True)
class PinnedFile:
    """A local file that was hashed in place, and the version of it that was hashed.

    Copying a large local file to a temp file only to read it again later costs a full extra write; the
    file itself is as good a copy, provided any change to it is noticed. So each later read re-opens the
    path and compares (size, mtime_ns, inode) of the opened file with the values seen while hashing: a
    write changes the size or mtime, and an atomic replace (write + rename) changes the inode.
    """

    path: str
    """The resolved path that was read."""
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def from_stat(cls, path: str, stat: os.stat_result) -> PinnedFile:
        return cls(path, stat.st_size, stat.st_mtime_ns, stat.st_ino)

    def matches(self, stat: os.stat_result) -> bool:
        """Whether ``stat`` (of an opened file) describes the version that was hashed."""
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino) == (self.size, self.mtime_ns, self.inode)

    def open(self, uri: str) -> BinaryIO:
        """The file opened for reading; raises :class:`SourceChangedError` if it is not the hashed version."""
        try:
            # Non-blocking open: a FIFO swapped in since hashing must not hang the read (fstat refuses it).
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.set_blocking(fd, True)
            stream: BinaryIO = open(fd, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except FileNotFoundError as exc:
            raise self._changed(uri, "was deleted") from exc
        except OSError as exc:
            raise SourceError(
                f"cannot re-read {self.path} ({uri}): {exc.strerror or exc}",
                hint="check that the file is still readable",
            ) from exc
        if not self.matches(os.fstat(stream.fileno())):  # fstat of the open file: no race with a rename
            stream.close()
            raise self._changed(uri, "changed")
        return stream

    def check_unchanged(self, stream: BinaryIO | io.FileIO, uri: str) -> None:
        """Raise :class:`SourceChangedError` if the file behind ``stream`` changed while it was read."""
        if not self.matches(os.fstat(stream.fileno())):
            raise self._changed(uri, "changed while it was read")

    def _changed(self, uri: str, what: str) -> SourceChangedError:
        return SourceChangedError(
            f"{self.path} ({uri}) {what} after it was fetched and hashed",
            hint="the hash no longer describes the file; list the source again",
        )
