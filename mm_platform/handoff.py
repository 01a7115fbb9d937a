"""How a large object travels from the process that hashed it to the worker that decodes it: by path.

Kept apart from ``sources`` and ``media`` (both use it) so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MediaFile"]


@dataclass(frozen=True)
class MediaFile:
    """A file a worker reads in place, and the (size, mtime_ns, inode) it must still have."""

    path: str
    size: int
    expect: tuple[int, int, int] | None = None
    """The version that was hashed (a source file read in place); ``None`` for a private spool file."""
