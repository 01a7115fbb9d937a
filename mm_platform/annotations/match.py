"""Find the media a file row names: by URI, by object key, or by content SHA-256, in one snapshot.

Only ``active`` media take annotations. A row naming a quarantined or deleted object is unmatched, and its
reason says which; a key that two sources share is ambiguous (match by URI instead); a content hash names
every active object holding those bytes (identical bytes get the same annotation).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pyarrow.compute as pc

from mm_platform.annotations.model import MatchKind
from mm_platform.lake import Snapshot
from mm_platform.tables import MEDIA, METADATA

__all__ = ["MatchOutcome", "MediaIndex", "MediaTarget"]

SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class MediaTarget:
    """An active media item an annotation can attach to."""

    media_id: str
    uri: str
    key: str
    content_sha256: str | None
    modality: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class MatchOutcome:
    """The media a key names, or why it names none (``reason`` is a reject reason)."""

    targets: tuple[MediaTarget, ...] = ()
    reason: str | None = None
    detail: str = ""


class MediaIndex:
    """The snapshot's media by URI, key and content hash (with sizes from ``metadata`` for box checks)."""

    def __init__(self, rows: list[dict[str, Any]], sizes: dict[str, tuple[int | None, int | None]], seq: int) -> None:
        self.seq = seq
        self._by: dict[str, dict[str, list[dict[str, Any]]]] = {
            kind: defaultdict(list) for kind in ("uri", "key", "sha256")
        }
        self._sizes = sizes
        for row in rows:
            self._by["uri"][row["uri"]].append(row)
            self._by["key"][row["key"]].append(row)
            if row["content_sha256"]:
                self._by["sha256"][row["content_sha256"]].append(row)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> MediaIndex:
        media = snapshot.table(
            MEDIA.name, columns=["media_id", "uri", "key", "content_sha256", "modality", "status"]
        ).to_pylist()
        active = pc.field("media_id").isin([m["media_id"] for m in media if m["status"] == "active"])
        metadata = snapshot.table(METADATA.name, columns=["media_id", "width", "height"], filter=active).to_pylist()
        sizes = {m["media_id"]: (m["width"], m["height"]) for m in metadata}
        return cls(media, sizes, snapshot.seq)

    def lookup(self, match: MatchKind, value: str) -> MatchOutcome:
        what = {"uri": "URI", "key": "object key", "sha256": "content SHA-256"}[match]
        if match == "sha256":
            value = value.strip().lower()
            if not SHA256.match(value):
                return MatchOutcome(reason="wrong_type", detail=f"{value!r} is not a SHA-256 (64 hex digits)")
        elif match == "uri" and value.startswith("/"):
            value = PurePosixPath(value).as_uri()  # a local path names the file:// URI the lake records
        rows = self._by[match].get(value, [])
        active = [r for r in rows if r["status"] == "active"]
        if not active:
            if rows:
                states = sorted({str(r["status"]) for r in rows})
                return MatchOutcome(
                    reason="unmatched",
                    detail=f"the media with {what} {value!r} is {'/'.join(states)}, not active",
                )
            return MatchOutcome(reason="unmatched", detail=f"no media with {what} {value!r} in snapshot {self.seq}")
        if match == "key" and len({r["uri"] for r in active}) > 1:
            return MatchOutcome(
                reason="ambiguous_key",
                detail=f"object key {value!r} names {len(active)} media in different sources: "
                + ", ".join(sorted(r["uri"] for r in active)),
            )
        return MatchOutcome(targets=tuple(self._target(r) for r in active))

    def _target(self, row: dict[str, Any]) -> MediaTarget:
        width, height = self._sizes.get(row["media_id"], (None, None))
        return MediaTarget(
            media_id=row["media_id"],
            uri=row["uri"],
            key=row["key"],
            content_sha256=row["content_sha256"],
            modality=row["modality"],
            width=width,
            height=height,
        )
