"""Stable identifiers.

``media_id`` follows an object's URI (not its bytes), so an overwritten object keeps its id and is re-derived;
``content_sha256`` (computed when the bytes are read) is what follows the bytes.
"""

from __future__ import annotations

import hashlib

__all__ = ["derived_id_for", "media_id_for"]

_ID_HEX_CHARS = 32  # 128 bits: collisions are negligible even at billions of rows, and ids stay short
_SEPARATOR = "\x1f"  # ASCII unit separator: cannot appear in the parts we join, so joins are unambiguous


def _short_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_ID_HEX_CHARS]


def media_id_for(uri: str) -> str:
    """The media id of the object at ``uri``: the first 32 hex chars of the SHA-256 of the UTF-8 URI."""
    return _short_sha256(uri)


def derived_id_for(media_id: str, kind: str, ordinal: int, producer: str, producer_version: str) -> str:
    """The id of a derived artifact (e.g. the 3rd keyframe of a video by producer ``keyframes`` v2).

    A new producer version gives new ids, so its rows sit beside the old version's instead of replacing them.
    """
    return _short_sha256(_SEPARATOR.join((media_id, kind, str(ordinal), producer, producer_version)))
