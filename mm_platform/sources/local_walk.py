"""A local folder's listing: a depth-first walk in key order, handed out as Arrow tables.

A walk is a sequence of folder scans (:func:`scan_folder`: one ``scandir``, the names keyed and sorted, one
``stat`` per file relative to the folder's descriptor). A scan answers its folder's listed files and, where
their keys fall among them, its sub-folders, which the walk scans next. Per file a scan costs a ``stat`` and
its result object, most of a walk's time in CPython; so past ``parallel_after`` files, while folders hold
:data:`MIN_FILES` files on average, whole folders are scanned by worker processes (one per core), which answer
Arrow tables: this process then does no per-file work at all. It keeps at most :data:`WINDOW` scans in flight
ahead of the one it hands out, in key order, so memory stays bounded; a dead worker's folder is scanned here.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

import pyarrow as pa

from mm_platform.sources.listing import local_listing_table
from mm_platform.sources.names import keys_for_names, uri_quoted_names

__all__ = ["MIN_FILES", "WINDOW", "Files", "FolderScan", "SubFolder", "scan_folder", "walk_tables"]

log = logging.getLogger("mm_platform.sources")

WINDOW = 32
"""Folder scans in flight ahead of the one being handed out."""
MIN_FILES = 64
"""Folders scanned so far must hold this many files on average for scans to go to the workers: a task's
round trip costs more than scanning a handful of files here."""


@dataclass
class Files:
    """Consecutive listed files of one folder, in key order (plain lists: cheap to extend here)."""

    uris: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)

    def table(self) -> pa.Table:
        return local_listing_table(self.uris, self.keys, self.sizes, self.mtimes)


@dataclass(frozen=True)
class SubFolder:
    """A folder to scan: its path, its path under the root as ``os`` names it ("" or ending in "/"), its URI
    (ending in "/")."""

    path: str
    raw_prefix: str
    uri_prefix: str


@dataclass
class FolderScan:
    """One folder's listing in key order: runs of files (as lists, or as tables from a worker) and the
    sub-folders between them; ``warnings`` are logged by the walk (a worker has no logging set up)."""

    parts: list[Files | pa.Table | SubFolder]
    warnings: list[str]
    files: int


def scan_folder(folder: SubFolder, start_after: str) -> FolderScan:
    """List ``folder``'s non-hidden entries in key order; entries wholly at or before ``start_after`` are left
    out (a paged listing resuming) and a sub-folder whose keys all sort before it is not listed.

    A sub-folder's key ends with "/", so a depth-first walk lists keys in global order without collecting
    the tree. Regular files and symlinks are listed (a broken symlink described by the link itself: fetch
    refuses what it cannot read); special files and symlinked folders are not, with a warning.
    """
    try:
        with os.scandir(folder.path) as scan:
            entries = [entry for entry in scan if not entry.name.startswith(".")]
        fd = os.open(folder.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        # One unreadable folder must not abort the listing of the rest.
        return FolderScan([], [f"skipping unreadable folder path={folder.path} error={exc.strerror or exc}"], 0)
    names = [entry.name for entry in entries]
    keys = keys_for_names(folder.raw_prefix, names)
    quoted = uri_quoted_names(names)
    try:
        leaf = _leaf_scan(folder, entries, names, keys, quoted, fd, start_after)
        if leaf is not None:
            return leaf
        return _mixed_scan(folder, entries, keys, quoted, fd, start_after)
    finally:
        os.close(fd)


def _leaf_scan(
    folder: SubFolder,
    entries: list[os.DirEntry[str]],
    names: list[str],
    keys: list[str],
    quoted: list[str],
    fd: int,
    start_after: str,
) -> FolderScan | None:
    """The usual folder, all regular files, in comprehensions (a third faster than a loop per entry);
    ``None`` for any other folder, or if a file went away meanwhile (:func:`_mixed_scan` says which)."""
    if not all([entry.is_file(follow_symlinks=False) for entry in entries]):
        return None
    order = sorted(range(len(keys)), key=keys.__getitem__)
    if start_after:
        order = [i for i in order if keys[i] > start_after]
    stat = os.stat
    try:
        stats = [stat(names[i], dir_fd=fd) for i in order]
    except OSError:
        return None
    prefix = folder.uri_prefix
    files = Files(
        [prefix + quoted[i] for i in order],
        [keys[i] for i in order],
        [s.st_size for s in stats],
        [s.st_mtime_ns for s in stats],
    )
    return FolderScan([files] if order else [], [], len(order))


def _mixed_scan(
    folder: SubFolder, entries: list[os.DirEntry[str]], keys: list[str], quoted: list[str], fd: int, start_after: str
) -> FolderScan:
    """Any folder, entry by entry: sub-folders between runs of files, links and special files, files gone."""
    warnings: list[str] = []
    rows = sorted(
        zip(keys, quoted, entries, [entry.is_dir(follow_symlinks=False) for entry in entries], strict=True),
        key=lambda row: row[0] + "/" if row[3] else row[0],
    )
    parts: list[Files | pa.Table | SubFolder] = []
    run = Files()
    count = 0
    for key, quoted_name, entry, is_dir in rows:
        if is_dir:
            if start_after and key + "/" <= start_after and not start_after.startswith(key + "/"):
                continue
            if run.keys:
                parts.append(run)
                run = Files()
            prefix = folder.raw_prefix + entry.name + "/"
            parts.append(SubFolder(entry.path, prefix, folder.uri_prefix + quoted_name + "/"))
            continue
        if start_after and key <= start_after:
            continue
        stat = _listed_stat(entry, fd, warnings)
        if stat is None:
            continue
        run.uris.append(folder.uri_prefix + quoted_name)
        run.keys.append(key)
        run.sizes.append(stat.st_size)
        run.mtimes.append(stat.st_mtime_ns)
        count += 1
    if run.keys:
        parts.append(run)
    return FolderScan(parts, warnings, count)


def _listed_stat(entry: os.DirEntry[str], fd: int, warnings: list[str]) -> os.stat_result | None:
    """The ``stat`` a listed entry is described by, or ``None`` (with a warning) for an entry not listed."""
    try:
        if entry.is_file(follow_symlinks=False):
            return os.stat(entry.name, dir_fd=fd)
        if entry.is_file():
            return entry.stat()
        if not entry.is_symlink():
            warnings.append(f"skipping special file path={entry.path}")
            return None
        if entry.is_dir():
            warnings.append(f"not following symlinked folder path={entry.path}")
            return None
        return entry.stat(follow_symlinks=False)
    except OSError as exc:
        warnings.append(f"skipping file gone while listing path={entry.path} error={exc.strerror}")
        return None


def scan_folder_in_columns(folder: SubFolder, start_after: str) -> FolderScan:
    """:func:`scan_folder` with its files as Arrow tables: a worker's task (tables cross the pipe as a few
    buffers, where lists would be unpickled string by string)."""
    scan = scan_folder(folder, start_after)
    scan.parts = [part.table() if isinstance(part, Files) else part for part in scan.parts]
    return scan


@dataclass
class _Pending:
    """A folder waiting in the walk's order, maybe already being scanned by a worker."""

    folder: SubFolder
    future: Future[FolderScan] | None = None


def walk_tables(
    root: str, start_after: str, chunk_keys: int, *, parallel_after: int | None, workers: int
) -> Iterator[pa.Table]:
    """Tables of ``chunk_keys`` listed files (the last one fewer) under ``root`` with keys after ``start_after``."""
    chunks = _Chunks(chunk_keys)
    root_uri = "file://" + quote_from_bytes(os.fsencode(root)) + "/"
    queue: deque[Files | pa.Table | _Pending] = deque([_Pending(SubFolder(root, "", root_uri))])
    scanned_files = scanned_folders = 0
    pool: ProcessPoolExecutor | None = None
    started: list[Future[int]] = []
    use_pool = parallel_after is not None and workers > 1
    while queue:
        item = queue.popleft()
        if not isinstance(item, _Pending):
            yield from chunks.add(item)
            continue
        scan = _result(item, start_after)
        for warning in scan.warnings:
            log.warning(warning)
        scanned_files += scan.files
        scanned_folders += 1
        queue.extendleft(reversed([_Pending(p) if isinstance(p, SubFolder) else p for p in scan.parts]))
        if use_pool and pool is None and parallel_after is not None and scanned_files > parallel_after:
            pool, started = _scan_pool(workers)
        # Scans go to the workers once they are up (this process scans on while they start) and while folders
        # are big enough to be worth a round trip.
        big_folders = scanned_files >= MIN_FILES * scanned_folders
        ready = pool is not None and big_folders and all(f.done() for f in started)
        if ready and pool is not None and not _submit_ahead(pool, queue, start_after):
            pool, use_pool = None, False  # the pool broke: the rest of this walk scans here
    yield from chunks.rest()


def _result(item: _Pending, start_after: str) -> FolderScan:
    if item.future is not None:
        try:
            return item.future.result()
        except BrokenProcessPool:  # a worker died (killed, out of memory): this folder is scanned here
            _forget_pool()
    return scan_folder(item.folder, start_after)


def _submit_ahead(pool: ProcessPoolExecutor, queue: deque[Files | pa.Table | _Pending], start_after: str) -> bool:
    """Give the workers the next :data:`WINDOW` folders in the walk's order; ``False`` if the pool broke."""
    seen = 0
    for item in queue:
        if not isinstance(item, _Pending):
            continue
        if item.future is None:
            try:
                item.future = pool.submit(scan_folder_in_columns, item.folder, start_after)
            except BrokenProcessPool:
                _forget_pool()
                return False
        seen += 1
        if seen >= WINDOW:
            break
    return True


class _Chunks:
    """Listed files, handed out as tables of exactly ``chunk_keys`` rows (a tick's budget counts them) and
    the rest at the end. Runs scanned here gather in plain lists; tables from workers are cut as they are."""

    def __init__(self, chunk_keys: int) -> None:
        self.chunk_keys = chunk_keys
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.files = Files()

    def add(self, part: Files | pa.Table) -> Iterator[pa.Table]:
        if isinstance(part, Files):
            self.files.uris += part.uris
            self.files.keys += part.keys
            self.files.sizes += part.sizes
            self.files.mtimes += part.mtimes
            if self.rows + len(self.files.keys) < self.chunk_keys:
                return
            self._take_files()
        else:
            self._take_files()
            self.tables.append(part)
            self.rows += part.num_rows
        while self.rows >= self.chunk_keys:
            whole = pa.concat_tables(self.tables)
            yield whole.slice(0, self.chunk_keys).combine_chunks()
            rest = whole.slice(self.chunk_keys)
            self.tables, self.rows = ([rest] if rest.num_rows else []), rest.num_rows

    def rest(self) -> Iterator[pa.Table]:
        self._take_files()
        if self.rows:
            yield pa.concat_tables(self.tables).combine_chunks()

    def _take_files(self) -> None:
        if self.files.keys:
            self.tables.append(self.files.table())
            self.rows += len(self.files.keys)
            self.files = Files()


_POOL_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None


def _scan_pool(workers: int) -> tuple[ProcessPoolExecutor, list[Future[int]]]:
    """The process's scan workers, started once and kept for later walks (a sensor lists every tick), and one
    trivial task per worker: all are done once every worker has started and imported this module."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
        return _POOL, [_POOL.submit(_started) for _ in range(workers)]


def _started() -> int:
    """A worker's first task: unpickling it imports this module, which every scan needs."""
    return os.getpid()


def _forget_pool() -> None:
    """Drop a broken pool: the rest of this walk scans here, the next walk starts fresh workers."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = None
