"""What the lake browser shows, as plain values: a thin layer over the functions the CLI uses.

Search is ``mm_platform.search.search``, lineage ``mm_platform.lineage.media_lineage``, the diff
``mm_platform.snapshots.diff_snapshots``; their ``to_dict`` output is what ``mmp … --json`` prints, so the
API answers what the CLI answers. This module adds only what a page needs beside that (an item's rows in
every table, thumbnails, the quarantine list) and the bounds a server needs (page sizes). No web framework.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from mm_platform.errors import ConfigError, MMPlatformError
from mm_platform.lake import Lake, Snapshot
from mm_platform.roles import IMAGE_MODALITIES
from mm_platform.search.routes import Query
from mm_platform.search.row_index import RowIndex
from mm_platform.serve.history import snapshot_history
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA, METADATA, QUARANTINE

__all__ = ["MAX_K", "MAX_PAGE", "BrowserError", "LakeBrowser", "NotFound"]

MAX_K = 200
"""The most search hits one request may ask for."""
MAX_PAGE = 500
"""The most rows of a list (quarantine, diff samples) one request may ask for."""
TEXT_EXCERPT = 600
_SNAPSHOTS = 8


class BrowserError(MMPlatformError):
    """A request the browser refuses (an out-of-range size, a bad parameter): a 4xx, with a hint."""


class NotFound(MMPlatformError):
    """Nothing with that id in the snapshot."""


def _bounded(value: int, upper: int, name: str) -> int:
    if not 1 <= value <= upper:
        raise BrowserError(f"{name} must be between 1 and {upper}, got {value}", hint=f"ask for at most {upper}")
    return value


def _display_value(value: Any) -> Any:
    """A row value as the browser shows it: times as ISO text, bytes by their size, Arrow maps as dicts."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, list) and value and isinstance(value[0], tuple):  # an Arrow map: [(key, value), …]
        return {str(k): v for k, v in value}
    return value


@dataclass(frozen=True)
class Thumb:
    """JPEG bytes from the ``derived`` table."""

    data: bytes
    mime_type: str


class LakeBrowser:
    """One lake, read-only, with the models and indexes kept warm between requests."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._snapshots: OrderedDict[int, Snapshot] = OrderedDict()
        self._rows: OrderedDict[int, RowIndex] = OrderedDict()
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load the models and open the indexes a query needs, so the first request is as fast as the next."""
        import io

        from PIL import Image

        from mm_platform.search import SearchError, search

        picture = io.BytesIO()
        Image.new("RGB", (64, 64), (128, 96, 64)).save(picture, format="PNG")
        for query in ("warm-up", picture.getvalue()):
            try:
                snapshot = self.snapshot()
                search(snapshot, query, k=1, thumbnails=True, rows=self.rows(snapshot))
                # A filter true for every media builds the snapshot's filter frame and each index's map to it,
                # so a user's first filter pays only for the columns it names.
                search(snapshot, query, k=1, where="size_bytes >= 0", rows=self.rows(snapshot))
            except SearchError:  # nothing of that kind to search yet
                continue

    # --- snapshots -------------------------------------------------------------------------------------

    def snapshot(self, seq: int | None = None) -> Snapshot:
        """Snapshot ``seq`` (default: the latest, looked up each time: the lake may have moved on). Opened
        snapshots are kept: one never changes, and its opened tables are what make the next request fast."""
        if seq is None:
            latest = self.lake.snapshot()  # one read of the log's head
            seq = latest.seq
            with self._lock:
                if seq not in self._snapshots:
                    self._snapshots[seq] = latest
        with self._lock:
            if seq in self._snapshots:
                self._snapshots.move_to_end(seq)
                return self._snapshots[seq]
        snapshot = self.lake.snapshot(seq=seq)  # a published snapshot never changes: keep its opened tables
        with self._lock:
            self._snapshots[seq] = snapshot
            while len(self._snapshots) > _SNAPSHOTS:
                self._snapshots.popitem(last=False)
        return snapshot

    def snapshots(self) -> list[dict[str, Any]]:
        """What ``mmp snapshots --json`` prints, with who and why where recorded (``serve.history``)."""
        return snapshot_history(self.lake)

    def diff(self, a: int, b: int, limit: int = 50) -> dict[str, Any]:
        """``mmp diff A B --json`` (every table) plus the media objects that changed, by key, with thumbnails."""
        from mm_platform.snapshots import diff_snapshots
        from mm_platform.snapshots.diff_objects import media_changes

        _bounded(limit, MAX_PAGE, "limit")
        diff = diff_snapshots(self.lake, a, b)
        return {**diff.to_dict(), "objects": media_changes(self.lake, a, b, limit=limit).to_dict()}

    # --- search ----------------------------------------------------------------------------------------

    def search(
        self,
        query: Query,
        *,
        k: int = 24,
        where: str | None = None,
        seq: int | None = None,
        fusion: str = "auto",
    ) -> list[dict[str, Any]]:
        """``mmp search --json``: the same function, the same dicts (thumbnails as sizes; fetch them by URL)."""
        from mm_platform.search import search

        _bounded(k, MAX_K, "k")
        snapshot = self.snapshot(seq)
        rows = self.rows(snapshot)
        hits = search(snapshot, query, k=k, where=where or None, thumbnails=True, fusion=fusion, rows=rows)
        return [h.to_dict() for h in hits]

    def rows(self, snapshot: Snapshot) -> RowIndex:
        """The snapshot's rows by media id, kept for the latest few snapshots searched."""
        with self._lock:
            found = self._rows.get(snapshot.seq)
            if found is None:
                found = self._rows[snapshot.seq] = RowIndex(snapshot)
                while len(self._rows) > 2:
                    self._rows.popitem(last=False)
            return found

    def like(self, media_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        """More like this: the item's own thumbnail-sized picture (or its text) as the query."""
        snapshot = self.snapshot(kwargs.get("seq"))
        row = self._media_row(snapshot, media_id)
        if row["modality"] in IMAGE_MODALITIES:
            thumb = self.thumbnail(media_id, kwargs.get("seq"))
            if thumb is None:
                raise BrowserError(f"{row['key']} has no thumbnail to search by", hint="search by text instead")
            return self.search(thumb.data, **kwargs)
        text = self._metadata_row(snapshot, media_id).get("text") or ""
        if not text.strip():
            raise BrowserError(f"{row['key']} has no text to search by", hint="search by text instead")
        return self.search(text[:2000], **kwargs)

    # --- items -----------------------------------------------------------------------------------------

    def lineage(self, ref: str, seq: int | None = None) -> dict[str, Any]:
        """``mmp lineage REF --json``; REF is looked up in the media table only (never as a local path)."""
        from mm_platform.lineage import media_lineage

        return media_lineage(self.lake, ref, seq=seq, paths=False).to_dict()

    def item(self, media_id: str, seq: int | None = None) -> dict[str, Any]:
        """Everything about one media object in one snapshot: its rows in every table, and its lineage."""
        from mm_platform.annotations.query import annotations_of

        snapshot = self.snapshot(seq)
        media = {k: _display_value(v) for k, v in self._media_row(snapshot, media_id).items()}
        metadata = {k: _display_value(v) for k, v in self._metadata_row(snapshot, media_id).items() if v is not None}
        if isinstance(metadata.get("text"), str) and len(metadata["text"]) > TEXT_EXCERPT:
            metadata["text"] = metadata["text"][:TEXT_EXCERPT] + " …"
        by_id = pc.field("media_id") == media_id
        derived_cols = ["derived_id", "kind", "ordinal", "mime_type", "width", "height", "timestamp_s", "text",
                        "label", "score", "producer", "producer_version"]
        derived = snapshot.table(DERIVED.name, columns=derived_cols, filter=by_id).to_pylist()
        derived.sort(key=lambda r: (r["kind"], r["ordinal"]))
        for row in derived:
            if isinstance(row.get("text"), str) and len(row["text"]) > TEXT_EXCERPT:
                row["text"] = row["text"][:TEXT_EXCERPT] + " …"
        vectors = snapshot.table(
            EMBEDDINGS.name,
            columns=["subject_id", "subject_kind", "model_id", "model_revision", "dim", "partition", "run_id"],
            filter=by_id,
        ).to_pylist()
        quarantine = snapshot.table(QUARANTINE.name, columns=["stage", "reason", "detail"], filter=by_id).to_pylist()
        return {
            "snapshot": snapshot.seq,
            "media": media,
            "metadata": metadata,
            "thumbnail": next((r["derived_id"] for r in derived if r["kind"] == "thumbnail"), None),
            "keyframes": [r for r in derived if r["kind"] == "keyframe"],
            "labels": [r for r in derived if r["kind"] == "label"],
            "text_chunks": [r for r in derived if r["kind"] == "text_chunk"],
            "annotations": annotations_of(snapshot, [media_id]).get(media_id, []),
            "vectors": sorted(vectors, key=lambda r: (r["model_id"], r["subject_kind"], r["subject_id"])),
            "quarantine": quarantine[0] if quarantine else None,
            "lineage": self.lineage(media_id, snapshot.seq),
        }

    def thumbnail(self, media_id: str, seq: int | None = None) -> Thumb | None:
        """The media's thumbnail JPEG from ``derived`` (None when it has none)."""
        where = (pc.field("media_id") == media_id) & (pc.field("kind") == "thumbnail")
        return self._derived_bytes(self.snapshot(seq), where)

    def derived_bytes(self, derived_id: str, seq: int | None = None) -> Thumb | None:
        """A derived row's bytes (a keyframe, a thumbnail) from ``derived``; text rows have none."""
        return self._derived_bytes(self.snapshot(seq), pc.field("derived_id") == derived_id)

    def quarantine(
        self, reason: str | None = None, seq: int | None = None, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        """Rejected objects with stage, reason and detail, optionally of one reason; counts per reason."""
        _bounded(limit, MAX_PAGE, "limit")
        if offset < 0:
            raise BrowserError(f"offset must be 0 or more, got {offset}")
        snapshot = self.snapshot(seq)
        table = snapshot.table(QUARANTINE.name, columns=["media_id", "uri", "stage", "reason", "detail",
                                                         "quarantined_at", "partition"])
        reasons = {r["reason"]: r["count"] for r in table.group_by("reason").aggregate([("reason", "count")])
                   .rename_columns(["reason", "count"]).to_pylist()} if table.num_rows else {}
        if reason:
            table = table.filter(pc.field("reason") == reason)
        table = table.sort_by([("quarantined_at", "descending"), ("uri", "ascending")])
        rows = [{k: _display_value(v) for k, v in r.items()} for r in table.slice(offset, limit).to_pylist()]
        return {"snapshot": snapshot.seq, "reason": reason, "total": table.num_rows, "reasons": reasons,
                "offset": offset, "limit": limit, "rows": rows}

    # --- helpers ---------------------------------------------------------------------------------------

    def _media_row(self, snapshot: Snapshot, media_id: str) -> dict[str, Any]:
        rows = snapshot.table(MEDIA.name, filter=pc.field("media_id") == media_id).to_pylist()
        if not rows:
            hint = "search for it, or pick another snapshot"
            raise NotFound(f"no media {media_id!r} in snapshot {snapshot.seq}", hint=hint)
        return dict(rows[0])

    def _metadata_row(self, snapshot: Snapshot, media_id: str) -> dict[str, Any]:
        rows = snapshot.table(METADATA.name, filter=pc.field("media_id") == media_id).to_pylist()
        return dict(rows[0]) if rows else {}

    def _derived_bytes(self, snapshot: Snapshot, where: pc.Expression) -> Thumb | None:
        rows = snapshot.table(DERIVED.name, columns=["data", "mime_type"], filter=where).slice(0, 1).to_pylist()
        if not rows or rows[0]["data"] is None:
            return None
        mime = rows[0]["mime_type"] or "image/jpeg"
        # Only pictures are served as what they are; anything else is plain bytes (never rendered as a page).
        return Thumb(bytes(rows[0]["data"]), mime if mime.startswith("image/") else "application/octet-stream")


def check_fusion(fusion: str) -> str:
    from mm_platform.search.fusion import FUSIONS

    if fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {fusion!r}", hint="use one of " + ", ".join(FUSIONS))
    return fusion

