"""A set of SHA-256 digests built from an Arrow column, 32 bytes per digest instead of a Python ``str``.

A lake of a million objects has a million content hashes, and a batch asks for each of its objects whether
its hash is among them. A Python ``set`` of the hex strings holds ~150 bytes per hash (a 10M-object lake:
1.5 GB, rebuilt before every batch); here the column's buffer is decoded in one call to 32-byte digests,
ordered by their first 8 bytes, and looked up by binary search: as fast to build, a quarter of the memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

__all__ = ["ContentSet"]

_HEX_DIGITS = 64
_DIGEST_BYTES = 32


class ContentSet:
    """Membership of content hashes as ``hexdigest`` writes them (64 lowercase hex digits); any other value
    in the column is kept as a string and matched exactly."""

    def __init__(self, values: pa.Array | pa.ChunkedArray) -> None:
        column = pc.drop_null(values)
        strings = (column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column).cast(pa.large_string())
        digests, self._others = _decode(strings)
        prefixes = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel().astype(np.uint64)
        order = np.argsort(prefixes, kind="stable")
        self._prefixes: NDArray[np.uint64] = prefixes[order]
        self._digests: NDArray[np.uint8] = digests[order]

    def __contains__(self, sha: object) -> bool:
        if not isinstance(sha, str):
            return False
        key = _canonical_digest(sha)
        if key is None:
            return sha in self._others
        prefix = int.from_bytes(key[:8], "big")
        at = int(np.searchsorted(self._prefixes, np.uint64(prefix)))
        while at < len(self._prefixes) and int(self._prefixes[at]) == prefix:
            if self._digests[at].tobytes() == key:
                return True
            at += 1
        return False

    def __len__(self) -> int:
        """How many values it was given (a value given twice counts twice)."""
        return len(self._prefixes) + len(self._others)


def _canonical_digest(sha: str) -> bytes | None:
    """The 32 bytes of a 64-digit lowercase hex string; None for anything else."""
    if len(sha) != _HEX_DIGITS:
        return None
    try:
        key = bytes.fromhex(sha)
    except ValueError:
        return None
    return key if len(key) == _DIGEST_BYTES and key.hex() == sha else None


def _decode(strings: pa.LargeStringArray) -> tuple[NDArray[np.uint8], set[str]]:
    """The digests as an (n, 32) byte matrix, and the values that are not digests."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    if len(strings) and bool((np.diff(offsets) == _HEX_DIGITS).all()):
        data = strings.buffers()[2]
        assert data is not None
        text = memoryview(data)[int(offsets[0]) : int(offsets[-1])].tobytes()
        try:
            decoded = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            decoded = b""
        # fromhex also takes upper case and skips spaces: neither is a digest as hexdigest writes it.
        if len(decoded) == _DIGEST_BYTES * len(strings) and text.islower():
            return np.frombuffer(decoded, dtype=np.uint8).reshape(-1, _DIGEST_BYTES), set()
    digests: list[bytes] = []
    others: set[str] = set()
    for value in strings.to_pylist():
        key = _canonical_digest(value)
        if key is None:
            others.add(value)
        else:
            digests.append(key)
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, _DIGEST_BYTES), others
