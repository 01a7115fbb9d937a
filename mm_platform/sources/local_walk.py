"""A local folder's listing: a depth-first walk in key order, handed out as Arrow tables.

Per file a walk costs one ``stat``, and in CPython that call and its result object are most of a walk's
time. Past ``parallel_after`` files, each folder's run of regular files is stat'ed by worker processes (one
task per run, ``os.stat`` relative to the folder's descriptor) while this process scans and sorts the folders
after it; results are taken in key order, at most :data:`WINDOW` runs ahead, so memory stays bounded. Small
trees, small runs and everything that is not a regular file (symlinks, special files) are handled here.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from array import array
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from operator import itemgetter
from urllib.parse import quote_from_bytes

import pyarrow as pa

from mm_platform.sources.listing import local_listing_table
from mm_platform.sources.names import keys_for_names, uri_quoted_names

__all__ = ["MIN_RUN", "WINDOW", "stat_run", "walk_tables"]

log = logging.getLogger("mm_platform.sources")

WINDOW = 32
"""Runs of files in flight ahead of the one being handed out."""
MIN_RUN = 64
"""Smaller runs are stat'ed here: a task's round trip would cost more than the calls."""
_GONE = -1


@dataclass
class _Run:
    """Consecutive regular files of one folder (or one other entry), in key order."""

    folder: str
    keys: list[str]
    uris: list[str]
    names: list[str]
    sizes: list[int] | None = None
    mtimes: list[int] | None = None
    future: Future[tuple[bytes, bytes]] | None = field(default=None, repr=False)

    def stats(self) -> tuple[list[int], list[int]]:
        if self.future is not None:
            try:
                raw = self.future.result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): this run is stat'ed here
                _forget_pool()
                raw = stat_run(self.folder, self.names)
            sizes, mtimes = (array("q", part).tolist() for part in raw)
            return sizes, mtimes
        assert self.sizes is not None and self.mtimes is not None
        return self.sizes, self.mtimes


def stat_run(folder: str, names: list[str]) -> tuple[bytes, bytes]:
    """Sizes and ``st_mtime_ns`` of ``names`` in ``folder`` (a worker's task); -1 for a file gone since."""
    sizes, mtimes = array("q"), array("q")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            try:
                stat = os.stat(name, dir_fd=fd)
            except OSError:
                sizes.append(_GONE)
                mtimes.append(_GONE)
                continue
            sizes.append(stat.st_size)
            mtimes.append(stat.st_mtime_ns)
    finally:
        os.close(fd)
    return sizes.tobytes(), mtimes.tobytes()


def walk_tables(
    root: str, start_after: str, chunk_keys: int, *, parallel_after: int | None, workers: int
) -> Iterator[pa.Table]:
    """Tables of ``chunk_keys`` listed files (the last one fewer) under ``root`` with keys after ``start_after``."""
    columns = _Columns(chunk_keys)
    pending: deque[_Run] = deque()
    planned = 0
    pool = None
    for run in _runs(root, start_after):
        planned += len(run.keys)
        if pool is None and parallel_after is not None and workers > 1 and planned > parallel_after:
            pool = _stat_pool(workers)
        if run.sizes is None:
            if pool is not None and len(run.names) >= MIN_RUN:
                try:
                    run.future = pool.submit(stat_run, run.folder, run.names)
                except BrokenProcessPool:
                    _forget_pool()
                    pool = None
            if run.future is None:
                run.sizes, run.mtimes = (array("q", raw).tolist() for raw in stat_run(run.folder, run.names))
        pending.append(run)
        while pending and (len(pending) > WINDOW or pending[0].future is None):
            yield from columns.add(pending.popleft())
    while pending:
        yield from columns.add(pending.popleft())
    yield from columns.rest()


class _Columns:
    """Listed files gathered in plain lists, handed out as tables of exactly ``chunk_keys`` rows (a tick's
    budget counts them) and the rest at the end."""

    def __init__(self, chunk_keys: int) -> None:
        self.chunk_keys = chunk_keys
        self.uris: list[str] = []
        self.keys: list[str] = []
        self.sizes: list[int] = []
        self.mtimes: list[int] = []

    def add(self, run: _Run) -> Iterator[pa.Table]:
        sizes, mtimes = run.stats()
        keys, uris = run.keys, run.uris
        if _GONE in sizes:
            kept = [i for i, size in enumerate(sizes) if size != _GONE]
            for i in sorted(set(range(len(sizes))) - set(kept)):
                log.warning("skipping file gone while listing path=%s/%s", run.folder, run.names[i])
            keys, uris = [keys[i] for i in kept], [uris[i] for i in kept]
            sizes, mtimes = [sizes[i] for i in kept], [mtimes[i] for i in kept]
        self.uris += uris
        self.keys += keys
        self.sizes += sizes
        self.mtimes += mtimes
        n = self.chunk_keys
        while len(self.keys) >= n:
            yield local_listing_table(self.uris[:n], self.keys[:n], self.sizes[:n], self.mtimes[:n])
            del self.uris[:n], self.keys[:n], self.sizes[:n], self.mtimes[:n]

    def rest(self) -> Iterator[pa.Table]:
        if self.keys:
            yield local_listing_table(self.uris, self.keys, self.sizes, self.mtimes)


def _runs(root: str, start_after: str) -> Iterator[_Run]:
    """Depth-first, in key order: runs of regular files, and each other listed entry as a run of one."""
    root_uri = "file://" + quote_from_bytes(os.fsencode(root)) + "/"
    stack = [_folder_entries(root, "", root_uri, start_after)]
    while stack:
        folder, rows = stack[-1]
        run = _Run(folder, [], [], [])
        for key, uri, entry, folder_prefix in rows:
            if folder_prefix is not None:
                stack.append(_folder_entries(entry.path, folder_prefix, uri, start_after))
                break  # the parent's rows resume after this folder
            if entry.is_file(follow_symlinks=False):
                run.keys.append(key)
                run.uris.append(uri)
                run.names.append(entry.name)
                continue
            if run.keys:
                yield run
                run = _Run(folder, [], [], [])
            other = _other_file(folder, key, uri, entry)
            if other is not None:
                yield other
        else:
            stack.pop()
        if run.keys:
            yield run


def _other_file(folder: str, key: str, uri: str, entry: os.DirEntry[str]) -> _Run | None:
    """A symlink, listed (a broken one described by the link itself; fetch refuses what it cannot read);
    special files and symlinked folders are not."""
    try:
        if entry.is_file():
            stat = entry.stat()
        elif not entry.is_symlink():
            log.warning("skipping special file path=%s", entry.path)
            return None
        elif entry.is_dir():
            log.warning("not following symlinked folder path=%s", entry.path)
            return None
        else:
            stat = entry.stat(follow_symlinks=False)
    except OSError as exc:
        log.warning("skipping file gone while listing path=%s error=%s", entry.path, exc.strerror)
        return None
    return _Run(folder, [key], [uri], [entry.name], [stat.st_size], [stat.st_mtime_ns])


def _folder_entries(
    folder: str, raw_prefix: str, uri_prefix: str, start_after: str
) -> tuple[str, Iterator[tuple[str, str, os.DirEntry[str], str | None]]]:
    """``folder`` and its non-hidden entries as ``(key, uri, entry, folder_prefix)``, sorted by key.

    ``raw_prefix`` is the folder's path under the root as ``os`` names it ("" or ending in "/"), ``uri_prefix``
    its URI with a trailing "/". A sub-folder's key and URI end with "/" (so a depth-first walk lists keys in
    global order without collecting the tree) and its ``folder_prefix`` is its own raw prefix; a file's is
    ``None``. Entries wholly at or before ``start_after`` are left out (a paged listing resuming)."""
    try:
        with os.scandir(folder) as scan:
            entries = [entry for entry in scan if not entry.name.startswith(".")]
    except OSError as exc:
        # One unreadable folder must not abort the listing of the rest.
        log.warning("skipping unreadable folder path=%s error=%s", folder, exc.strerror or exc)
        return folder, iter(())
    names = [entry.name for entry in entries]
    rows: list[tuple[str, str, os.DirEntry[str], str | None]] = []
    for entry, key, quoted in zip(entries, keys_for_names(raw_prefix, names), uri_quoted_names(names), strict=True):
        if entry.is_dir(follow_symlinks=False):
            rows.append((key + "/", uri_prefix + quoted + "/", entry, raw_prefix + entry.name + "/"))
        else:
            rows.append((key, uri_prefix + quoted, entry, None))
    rows.sort(key=itemgetter(0))
    if start_after:
        # A folder whose keys all sort at or before start_after is not entered; files up to it are done.
        rows = [r for r in rows if r[0] > start_after or (r[3] is not None and start_after.startswith(r[0]))]
    return folder, iter(rows)


_POOL_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None


def _stat_pool(workers: int) -> ProcessPoolExecutor:
    """The process's stat workers, started once and kept for later walks (a sensor lists every tick)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
        return _POOL


def _forget_pool() -> None:
    """Drop a broken pool: the rest of this walk stats here, the next walk starts fresh workers."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = None
