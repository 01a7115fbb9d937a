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
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

import pyarrow as pa

from mm_platform.forkserver import configure_forkserver
from mm_platform.sources.folder_scan import Files, FolderScan, SubFolder, scan_folder, scan_folder_in_columns

__all__ = ["MIN_FILES", "WINDOW", "walk_tables"]

log = logging.getLogger("mm_platform.sources")

WINDOW = 32
"""Folder scans in flight ahead of the one being handed out."""
MIN_FILES = 64
"""Folders scanned so far must hold this many files on average for scans to go to the workers: a task's
round trip costs more than scanning a handful of files here."""


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
    starting: Future[ProcessPoolExecutor] | None = None
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
        if use_pool and starting is None and parallel_after is not None and scanned_files > parallel_after:
            starting = _scan_pool(workers)
        if pool is None and starting is not None and starting.done():
            pool, starting = _started_pool(starting)
            use_pool = pool is not None
        # Scans go to the workers once they are up (this process scans on while they start) and while folders
        # are big enough to be worth a round trip.
        big_folders = scanned_files >= MIN_FILES * scanned_folders
        if pool is not None and big_folders and not _submit_ahead(pool, queue, start_after):
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
_POOL: Future[ProcessPoolExecutor] | None = None


def _scan_pool(workers: int) -> Future[ProcessPoolExecutor]:
    """The process's scan workers, started once and kept for later walks (a sensor lists every tick). They
    start on a thread, so the walk scans on meanwhile; the future is done once every worker has answered a
    first trivial task (or with the error that kept them from starting)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = Future()
            threading.Thread(target=_start_pool, args=(_POOL, workers), name="mmp-scan-pool", daemon=True).start()
        return _POOL


def _start_pool(future: Future[ProcessPoolExecutor], workers: int) -> None:
    try:
        context = multiprocessing.get_context("forkserver")
        # The fork server imports this module once, so each worker forks ready in milliseconds instead of
        # importing pyarrow on the walk's cores. A server already started (for probe workers) keeps its own
        # list; its workers import this module on their first task.
        configure_forkserver([__name__])
        pool = ProcessPoolExecutor(workers, mp_context=context)
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
        for started in [pool.submit(_started) for _ in range(workers)]:
            started.result()
    except Exception as exc:  # noqa: BLE001 - no workers (no fork server, out of processes): scan here
        future.set_exception(exc)
        return
    future.set_result(pool)


def _started_pool(starting: Future[ProcessPoolExecutor]) -> tuple[ProcessPoolExecutor | None, None]:
    """The started workers, or ``None`` (logged) if they could not start: the walk then scans here."""
    try:
        return starting.result(), None
    except Exception as exc:  # noqa: BLE001
        log.warning("scan workers did not start, listing in this process error=%s", exc)
        _forget_pool()
        return None, None


def _started() -> int:
    """A worker's first task: unpickling it imports this module, which every scan needs."""
    return os.getpid()


def _forget_pool() -> None:
    """Drop a broken pool: the rest of this walk scans here, the next walk starts fresh workers."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL.done() and _POOL.exception() is None:
            _POOL.result().shutdown(wait=False, cancel_futures=True)
        _POOL = None
