"""One folder's listing in key order (a local walk's unit of work, here or in a scan worker).

:func:`scan_folder` ``lstat``s each file relative to the folder's descriptor; a folder of regular files with
UTF-8 names (the usual one) becomes one Arrow table with its keys, URIs and order computed in Arrow, any
other is scanned entry by entry. :func:`scan_folder_in_columns` is the same with every run of files as a
table (a worker's task). :mod:`mm_platform.sources.local_walk` orders the scans into a walk.
"""

from __future__ import annotations

import os
import stat as stat_module
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.sources.listing import local_listing_table
from mm_platform.sources.names import has_undecodable_bytes, keys_for_names, uri_quoted_names

__all__ = ["FolderScan", "Files", "SubFolder", "scan_folder", "scan_folder_in_columns"]


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
        fd = os.open(folder.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            leaf = _leaf_scan(folder, fd, start_after)
            if leaf is not None:
                return leaf
            with os.scandir(folder.path) as scan:
                entries = [entry for entry in scan if not entry.name.startswith(".")]
            names = [entry.name for entry in entries]
            keys = keys_for_names(folder.raw_prefix, names)
            return _mixed_scan(folder, entries, keys, uri_quoted_names(names), fd, start_after)
        finally:
            os.close(fd)
    except OSError as exc:
        # One unreadable folder must not abort the listing of the rest.
        return FolderScan([], [f"skipping unreadable folder path={folder.path} error={exc.strerror or exc}"], 0)


_FILE_TYPE = pa.scalar(stat_module.S_IFMT(0o177777), pa.uint32())
_REGULAR = pa.scalar(stat_module.S_IFREG, pa.uint32())


def _leaf_scan(folder: SubFolder, fd: int, start_after: str) -> FolderScan | None:
    """The usual folder, regular files with UTF-8 names only, as one table: per file just the ``lstat`` and
    its three numbers are Python work; keys, URIs, the sort and the cut at ``start_after`` run in Arrow.
    ``None`` for any other folder, or if a file went away meanwhile (:func:`_mixed_scan` says which)."""
    names = os.listdir(fd)
    if "/." in "/" + "/".join(names):
        names = [name for name in names if not name.startswith(".")]
    joined = "/".join(names)
    if has_undecodable_bytes(joined) or has_undecodable_bytes(folder.raw_prefix):
        return None  # keys need encoding: entry by entry
    stat = os.stat
    try:
        stats = [stat(name, dir_fd=fd, follow_symlinks=False) for name in names]
    except OSError:
        return None
    modes = pa.array([s.st_mode for s in stats], pa.uint32())
    if not pc.all(pc.equal(pc.bit_wise_and(modes, _FILE_TYPE), _REGULAR)).as_py() and names:
        return None  # sub-folders, links or special files
    name_array = pa.array(names, pa.string())
    quoted = uri_quoted_names(names)
    quoted_array = name_array if quoted is names else pa.array(quoted, pa.string())
    table = local_listing_table(
        pc.binary_join_element_wise(folder.uri_prefix, quoted_array, ""),
        pc.binary_join_element_wise(folder.raw_prefix, name_array, ""),
        pa.array([s.st_size for s in stats], pa.int64()),
        pa.array([s.st_mtime_ns for s in stats], pa.int64()),
    )
    table = table.take(pc.sort_indices(table.column("key")))
    if start_after:
        table = table.filter(pc.greater(table.column("key"), start_after))
    return FolderScan([table] if table.num_rows else [], [], table.num_rows)


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
