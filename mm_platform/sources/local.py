"""A local folder as a media source: recursive sorted listing, hidden entries skipped, reads kept inside."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from mm_platform.errors import ConfigError, SourceChangedError, SourceError
from mm_platform.machine import usable_cpus
from mm_platform.sources.base import (
    CHUNK_BYTES,
    FetchedObject,
    ObjectInfo,
    PinnedFile,
    Source,
    check_listed_size,
    spool_chunks,
)
from mm_platform.sources.listing import DEFAULT_CHUNK_KEYS, objects_of
from mm_platform.sources.local_walk import walk_tables
from mm_platform.sources.names import path_of_file_uri

__all__ = ["PARALLEL_AFTER", "LocalFolderSource"]

# Local files above this are handed to the probe workers as pinned paths (mapped there from the page cache)
# rather than as bytes pickled through a pipe: on the 96 issue-16 images (88 MB, wallpapers up to 13 MB) a
# batch took 3.90 s instead of 4.24 s (medians of 5, alternated, benchmarks in BENCHMARKS.md); below ~1 MiB
# the pipe is as cheap as opening and mapping a file.
IN_MEMORY_MAX_BYTES = 1 << 20
PARALLEL_AFTER = 50_000
"""A walk that has found this many files is a big one: starting the scan workers pays from here on."""

log = logging.getLogger("mm_platform.sources")


class LocalFolderSource(Source):
    """Every non-hidden file under ``root``.

    Files up to ``spool_max_bytes`` are read into memory; larger ones are hashed in place and not copied:
    the fetched object re-reads the file and fails if it changed since (see :class:`PinnedFile`), and a
    probe worker maps it instead of receiving its bytes through a pipe.

    Symlinked directories are not followed (no loops, no duplicates). Files and symlinks that cannot be read
    are still listed, and :meth:`fetch` raises :class:`SourceError` for them, so the pipeline can quarantine
    them with a reason instead of losing them silently. That includes symlinks that lead outside the root
    and symlinks to FIFOs, sockets or devices, which are refused before any open that could block (a bare
    special file is not listed at all). Names that are not valid UTF-8 get a percent-encoded key
    (:mod:`mm_platform.sources.names`); the URI always holds the exact bytes.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        spool_max_bytes: int = IN_MEMORY_MAX_BYTES,
        parallel_after: int | None = PARALLEL_AFTER,
    ) -> None:
        """``parallel_after``: files listed before the ``stat`` calls go to worker processes (``None``: never;
        see :mod:`mm_platform.sources.local_walk`)."""
        path = Path(root).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"source folder {path} does not exist or is not a folder", hint="check the path given as the source"
            )
        self.root = path.resolve()
        self.uri = self.root.as_uri()
        self.spool_max_bytes = spool_max_bytes
        self.parallel_after = parallel_after
        # fetch checks containment on strings: pathlib's resolve/is_relative_to cost more than hashing a
        # small file.
        self._root_str = str(self.root)
        self._root_prefix = os.path.join(self._root_str, "")

    def list_objects(self, start_after: str | None = None) -> Iterator[ObjectInfo]:
        for table in self.list_tables(start_after):
            yield from objects_of(table, self.uri)

    def fetch(self, obj: ObjectInfo) -> FetchedObject:
        if obj.source != self.uri:
            raise SourceError(f"{obj.uri} was listed by {obj.source}, not by this source ({self.uri})")
        path = path_of_file_uri(obj.uri)  # the key may be percent-encoded; the URI is exact
        real = os.path.realpath(path)
        if not real.startswith(self._root_prefix):
            raise SourceError(
                f"refusing to read {_shown(path)}: it links to {_shown(real)}, outside the source folder {self.root}",
                hint="copy the file into the folder, or add the folder it lives in as a source",
            )
        try:
            stream = _open_regular(real, path)
        except FileNotFoundError as exc:
            if os.path.islink(path):
                raise SourceError(
                    f"cannot read {_shown(path)}: it is a broken symlink to {_shown(real)}",
                    hint="fix or remove the link",
                ) from exc
            raise SourceChangedError(
                f"{_shown(path)} was deleted after it was listed", hint="list the source again"
            ) from exc
        except OSError as exc:
            raise SourceError(
                f"cannot read {_shown(path)}: {exc.strerror or exc}", hint="check that the file exists and is readable"
            ) from exc
        with stream:
            try:
                if obj.size_bytes > self.spool_max_bytes:
                    return _hash_in_place(obj, real, stream)
                return spool_chunks(
                    obj, iter(lambda: stream.read(CHUNK_BYTES), b""), spool_max_bytes=self.spool_max_bytes
                )
            except OSError as exc:
                raise SourceError(
                    f"cannot read {_shown(path)}: {exc.strerror or exc}", hint="check that the file is readable"
                ) from exc

    def list_tables(self, start_after: str | None = None, chunk_keys: int = DEFAULT_CHUNK_KEYS) -> Iterator[pa.Table]:
        workers = usable_cpus()
        return walk_tables(
            self._root_str, start_after or "", chunk_keys, parallel_after=self.parallel_after, workers=workers
        )


_SPECIAL_KINDS = (
    (stat_module.S_ISFIFO, "a FIFO (named pipe)"),
    (stat_module.S_ISSOCK, "a socket"),
    (stat_module.S_ISCHR, "a character device"),
    (stat_module.S_ISBLK, "a block device"),
    (stat_module.S_ISDIR, "a folder"),
)


def _shown(path: str) -> str:
    """A path for a message: undecodable bytes as ``\\xNN`` (a message must be valid UTF-8)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _open_regular(real: str, path: str) -> io.FileIO:
    """Open ``real`` for reading only if it is a regular file, without ever blocking.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer; the opened file is
    then checked with ``fstat`` (no race with a rename between a check and the open).
    """
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat_module.S_ISREG(mode):
        os.close(fd)
        kind = next((what for test, what in _SPECIAL_KINDS if test(mode)), "not a regular file")
        raise SourceError(
            f"cannot read {_shown(path)}: it is {kind}, not a regular file",
            hint="only regular files are media; remove the link or point it at a file",
        )
    os.set_blocking(fd, True)
    return open(fd, "rb", buffering=0)  # noqa: SIM115 - the caller closes it


def _hash_in_place(obj: ObjectInfo, path: str, stream: io.FileIO) -> FetchedObject:
    """Hash a large file in one pass without keeping or copying its bytes; later reads re-open it.

    The version is taken from the open file before the read and checked again after it, so the hash is
    known to describe exactly the (size, mtime_ns, inode) that later reads will insist on.
    """
    pinned = PinnedFile.from_stat(path, os.fstat(stream.fileno()))
    hasher = hashlib.sha256()
    view = memoryview(bytearray(CHUNK_BYTES))  # one buffer reused: no allocation per chunk
    size = 0
    while count := stream.readinto(view):
        hasher.update(view[:count])
        size += count
    check_listed_size(obj, size)
    pinned.check_unchanged(stream, obj.uri)
    return FetchedObject(obj, hasher.hexdigest(), size, pinned=pinned)
