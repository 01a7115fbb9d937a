"""A snapshot diff in the terms people use: object keys, not row ids.

``diff_snapshots`` matches rows by each table's key (``media_id``, ``derived_id``, ``subject_id`` …): exact,
but a hash means nothing to a reader. ``object_keys`` names the source object of every sampled row, and
``media_changes`` lists the objects added, changed (other bytes, or another status) and removed between two
snapshots, from the ``media`` table's own diff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake import Lake, Snapshot
from mm_platform.snapshots.diff import SnapshotDiff, diff_snapshots, resolve_snapshot
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA

__all__ = ["MediaChange", "MediaChanges", "media_changes", "sample_objects"]

_CATEGORIES = ("added_keys", "changed_keys", "removed_keys")
# Tables whose key does not hold the media id: where to find it.
_ID_COLUMNS = {DERIVED.name: "derived_id", EMBEDDINGS.name: "subject_id"}


def _keys_of(snapshot: Snapshot, media_ids: set[str]) -> dict[str, str]:
    if not media_ids:
        return {}
    ids = pa.array(sorted(media_ids), pa.string())
    rows = snapshot.table(MEDIA.name, columns=["media_id", "key"], filter=pc.field("media_id").isin(ids)).to_pylist()
    return {r["media_id"]: r["key"] for r in rows}


def _media_ids_of(snapshot: Snapshot, table: str, row_ids: set[str]) -> dict[str, str]:
    column = _ID_COLUMNS[table]
    if not row_ids:
        return {}
    ids = pa.array(sorted(row_ids), pa.string())
    rows = snapshot.table(table, columns=[column, "media_id"], filter=pc.field(column).isin(ids)).to_pylist()
    return {r[column]: r["media_id"] for r in rows}


def sample_objects(snap_a: Snapshot, snap_b: Snapshot, diff: SnapshotDiff) -> dict[str, dict[str, list[str | None]]]:
    """Per table and category (``added_keys`` …), the object key of each sampled row, in the sample's order.

    Added and changed rows are named from snapshot ``b``, removed rows from snapshot ``a`` (where they were).
    ``None`` where a row names no media object (the ``settings`` table).
    """
    out: dict[str, dict[str, list[str | None]]] = {}
    sides = {"added_keys": snap_b, "changed_keys": snap_b, "removed_keys": snap_a}
    for name, table in diff.tables.items():
        if table.is_empty:
            continue
        per_category: dict[str, list[str | None]] = {}
        for category in _CATEGORIES:
            sample: list[dict[str, Any]] = getattr(table, category)
            if not sample:
                continue
            snapshot = sides[category]
            if "media_id" in table.key:
                media_ids = [str(k["media_id"]) for k in sample]
            elif name in _ID_COLUMNS:
                row_to_media = _media_ids_of(snapshot, name, {str(k[_ID_COLUMNS[name]]) for k in sample})
                media_ids = [row_to_media.get(str(k[_ID_COLUMNS[name]]), "") for k in sample]
            else:
                per_category[category] = [None] * len(sample)
                continue
            keys = _keys_of(snapshot, set(media_ids))
            per_category[category] = [keys.get(m) for m in media_ids]
        out[name] = per_category
    return out


@dataclass(frozen=True)
class MediaChange:
    """One object that differs between the two snapshots."""

    media_id: str
    key: str
    uri: str
    change: str
    """``added``, ``changed`` or ``removed``."""
    modality: str | None
    content_sha256_a: str | None
    content_sha256_b: str | None
    status_a: str | None
    status_b: str | None
    columns: list[str] = field(default_factory=list)
    """For ``changed``: the media columns that differ (beyond lineage bookkeeping)."""


@dataclass(frozen=True)
class MediaChanges:
    a: int
    b: int
    added: int
    changed: int
    removed: int
    objects: list[MediaChange]
    """Up to ``limit`` per category, by key."""

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "added": self.added, "changed": self.changed, "removed": self.removed,
                "objects": [o.__dict__ for o in self.objects]}


_BOOKKEEPING = {"run_id", "partition", "registered_at", "producer", "producer_version", "source_content_sha256"}


def media_changes(lake: Lake, a: int | str | Snapshot, b: int | str | Snapshot, *, limit: int = 50) -> MediaChanges:
    """The objects added, changed and removed from ``a`` to ``b`` (seqs, branch refs or snapshots; ``media``
    rows matched by id)."""
    snap_a, snap_b = resolve_snapshot(lake, a), resolve_snapshot(lake, b)
    table = diff_snapshots(lake, snap_a, snap_b, tables=[MEDIA.name], sample_size=limit).tables[MEDIA.name]
    wanted = {str(k["media_id"]) for c in _CATEGORIES for k in getattr(table, c)}
    columns = ["media_id", "key", "uri", "modality", "content_sha256", "status", "etag", "version_id", "size_bytes"]
    ids = pa.array(sorted(wanted), pa.string())

    def rows(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
        if not wanted:
            return {}
        found = snapshot.table(MEDIA.name, columns=columns, filter=pc.field("media_id").isin(ids)).to_pylist()
        return {r["media_id"]: r for r in found}

    before, after = rows(snap_a), rows(snap_b)
    objects: list[MediaChange] = []
    for category, change in (("added_keys", "added"), ("changed_keys", "changed"), ("removed_keys", "removed")):
        for k in getattr(table, category):
            media_id = str(k["media_id"])
            old, new = before.get(media_id, {}), after.get(media_id, {})
            row = new or old
            differ = [c for c in columns[3:] if old and new and old.get(c) != new.get(c)]
            objects.append(
                MediaChange(
                    media_id=media_id,
                    key=str(row.get("key", "")),
                    uri=str(row.get("uri", "")),
                    change=change,
                    modality=row.get("modality"),
                    content_sha256_a=old.get("content_sha256"),
                    content_sha256_b=new.get("content_sha256"),
                    status_a=old.get("status"),
                    status_b=new.get("status"),
                    columns=[c for c in differ if c not in _BOOKKEEPING],
                )
            )
    objects.sort(key=lambda o: ({"added": 0, "changed": 1, "removed": 2}[o.change], o.key))
    return MediaChanges(snap_a.seq, snap_b.seq, table.added, table.changed, table.removed, objects)
