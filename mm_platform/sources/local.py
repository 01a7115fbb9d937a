"""A local folder as a media source: recursive sorted listing, hidden entries skipped, reads kept inside."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat as stat_module
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_from_bytes

from mm_platform.errors import ConfigError, SourceChangedError, SourceError
from mm_platform.sources.base import (
    CHUNK_BYTES,
    DEFAULT_SPOOL_MAX_BYTES,
    FetchedObject,
    ObjectInfo,
    PinnedFile,
    Source,
    check_listed_size,
    spool_chunks,
)
from mm_platform.sources.names import key_for_name, path_of_file_uri

__all__ = ["LocalFolderSource"]

log = logging.getLogger("mm_platform.sources")


class LocalFolderSource(Source):
    """Every non-hidden file under ``root``.

    Files up to ``spool_max_bytes`` are read into memory; larger ones are hashed in place and not copied:
    the fetched object re-reads the file and fails if it changed since (see :class:`PinnedFile`).

    Symlinked directories are not followed (no loops, no duplicates). Files and symlinks that cannot be read
    are still listed, and :meth:`fetch` raises :class:`SourceError` for them, so the pipeline can quarantine
    them with a reason instead of losing them silently. That includes symlinks that lead outside the root
    and symlinks to FIFOs, sockets or devices, which are refused before any open that could block (a bare
    special file is not listed at all). Names that are not valid UTF-8 get a percent-encoded key
    (:mod:`mm_platform.sources.names`); the URI always holds the exact bytes.
    """

    def __init__(self, root: Path | str, *, spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"source folder {path} does not exist or is not a folder", hint="check the path given as the source"
            )
        self.root = path.resolve()
        self.uri = self.root.as_uri()
        self.spool_max_bytes = spool_max_bytes
        # fetch checks containment on strings: pathlib's resolve/is_relative_to cost more than hashing a
        # small file.
        self._root_str = str(self.root)
        self._root_prefix = os.path.join(self._root_str, "")

    def list_objects(self, start_after: str | None = None) -> Iterator[ObjectInfo]:
        return self._walk(self.root, "", start_after or "")

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

    def _walk(self, folder: Path, key_prefix: str, start_after: str = "") -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as scan:
                entries = [entry for entry in scan if not entry.name.startswith(".")]
        except OSError as exc:
            # One unreadable folder must not abort the listing of the rest.
            log.warning("skipping unreadable folder path=%s error=%s", folder, exc.strerror or exc)
            return
        # Sorting a folder's entries with "/" appended to folder names yields keys in global sorted order
        # during a depth-first walk, without collecting the whole tree first. Sorted by their keys (a
        # non-UTF-8 name's key is percent-encoded), so listing order is key order and a paged listing can
        # resume after a key.
        entries.sort(key=lambda e: key_for_name(e.name) + ("/" if e.is_dir(follow_symlinks=False) else ""))
        for entry in entries:
            key = key_prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                # Resuming a paged listing: a folder whose keys all sort before start_after is not entered.
                folder_key = key_for_name(key) + "/"
                if start_after and not start_after.startswith(folder_key) and start_after > folder_key:
                    continue
                yield from self._walk(Path(entry.path), key + "/", start_after)
            elif start_after and key_for_name(key) <= start_after:
                continue
            elif entry.is_symlink() and entry.is_dir():
                log.warning("not following symlinked folder path=%s", entry.path)
            elif entry.is_file() or entry.is_symlink():
                info = self._info(entry, key)
                if info is not None:
                    yield info
            else:
                log.warning("skipping special file path=%s", entry.path)

    def _info(self, entry: os.DirEntry[str], key: str) -> ObjectInfo | None:
        try:
            # A symlink that leads nowhere is described by the link itself; fetch refuses it.
            stat = entry.stat() if entry.is_file() else entry.stat(follow_symlinks=False)
        except OSError as exc:
            log.warning("skipping file gone while listing path=%s error=%s", entry.path, exc.strerror)
            return None
        return ObjectInfo(
            # = Path(entry.path).as_uri() (the root is resolved, so entry paths are normal), without building a
            # Path per file: a third of a million-file listing's time.
            uri="file://" + quote_from_bytes(os.fsencode(entry.path)),
            source=self.uri,
            key=key_for_name(key),
            size_bytes=stat.st_size,
            etag=f"{stat.st_size}-{stat.st_mtime_ns}",
            version_id=None,
            last_modified=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=UTC),
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
