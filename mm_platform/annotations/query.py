"""Reading annotations back: revisions and the snapshots that hold them, the labels a filter may name, the
annotations of search hits, and which labels changed between two snapshots.

Labels for ``--where``: one relation, many rows per media — the annotations of every set *and* the models'
labels from ``derived`` (``kind = 'label'``), side by side and told apart by ``label_producer`` (``human`` or
whatever ``--producer`` said for attached sets, the model id for a model's labels; ``annotation_set`` is
null for a model's). A filter matches a media item when one of its label rows (with its media and metadata
row) satisfies the whole expression, as in SQL's ``EXISTS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.annotations.attach import partition_for
from mm_platform.annotations.schema import ANNOTATION_SETS, ANNOTATIONS, VALUE_COLUMNS
from mm_platform.errors import SnapshotNotFoundError
from mm_platform.lake import Lake, Snapshot
from mm_platform.tables import DERIVED, MEDIA

__all__ = [
    "LABEL_COLUMNS",
    "REVISION_COLUMNS",
    "annotations_of",
    "extra_columns",
    "label_changes",
    "label_rows",
    "label_schema",
    "revision_snapshot",
    "revisions",
]

LABEL_COLUMNS: dict[str, pa.DataType] = {
    "label": pa.string(),
    "score": pa.float64(),
    "label_producer": pa.string(),
    "annotation_set": pa.string(),
    "annotation_key": pa.string(),
    "annotation_revision": pa.int64(),
    "value_type": pa.string(),
    "bbox_x": pa.float64(),
    "bbox_y": pa.float64(),
    "bbox_w": pa.float64(),
    "bbox_h": pa.float64(),
}
"""The label columns a filter may name (plus every scalar extra column of ``annotations``)."""
_SOURCE = {"label_producer": "producer", "annotation_revision": "revision"}  # filter name → annotations column
_SHOWN = ("label", "score", "bbox", "value_json")


REVISION_COLUMNS = [
    "annotation_set",
    "revision",
    "source_file",
    "source_version",
    "rows_in_file",
    "rows_attached",
    "rows_rejected",
    "annotations",
    "added",
    "changed",
    "removed",
    "unchanged",
    "attached_at",
]


def revisions(lake: Lake, set_name: str | None = None, *, snapshot: Snapshot | None = None) -> list[dict[str, Any]]:
    """Every revision (of one set, or of all) that ``snapshot`` (default: the latest) knows, oldest first: its
    ``annotation_sets`` row and ``seq``, the snapshot that published it (``None`` if rolled back past)."""
    snap = snapshot or lake.snapshot()
    where = None if set_name is None else pc.field("annotation_set") == set_name
    rows = snap.table(ANNOTATION_SETS.name, columns=REVISION_COLUMNS, filter=where).to_pylist()
    seqs = {e.partition: e.publish_seq for e in lake.state().published() if e.partition}
    for row in rows:
        row["seq"] = seqs.get(partition_for(row["annotation_set"], row["revision"]))
    return sorted(rows, key=lambda r: (r["annotation_set"], r["revision"]))


def revision_snapshot(lake: Lake, set_name: str, revision: int) -> Snapshot:
    """The snapshot that published revision ``revision`` of the set: its annotations as they were then."""
    found = next((r for r in revisions(lake, set_name) if r["revision"] == revision), None)
    if found is None or found["seq"] is None:
        raise SnapshotNotFoundError(
            f"annotation set {set_name!r} has no published revision {revision}",
            hint="`mmp annotations` lists the revisions and their snapshots",
        )
    return lake.snapshot(seq=found["seq"])


def extra_columns(schema: pa.Schema) -> list[pa.Field]:
    """The columns annotation files brought to ``annotations`` (schema evolution), beyond its own."""
    return [f for f in schema if f.name not in ANNOTATIONS.schema.names]


def label_schema(snapshot: Snapshot) -> pa.Schema:
    """The label columns a filter may name in this snapshot."""
    fields = [pa.field(name, kind) for name, kind in LABEL_COLUMNS.items()]
    return pa.schema(fields + extra_columns(snapshot.schema(ANNOTATIONS.name)))


def label_rows(snapshot: Snapshot, columns: Sequence[str]) -> pa.Table:
    """``media_id`` plus ``columns`` (names of :func:`label_schema`), one row per annotation or model label."""
    schema = label_schema(snapshot)
    wanted = pa.schema([pa.field("media_id", pa.string()), *(schema.field(c) for c in columns)])
    needed = {_SOURCE.get(c, c) for c in columns if not c.startswith("bbox_")}
    if any(c.startswith("bbox_") for c in columns):
        needed.add("bbox")
    human = snapshot.table(ANNOTATIONS.name, columns=["media_id", *sorted(needed)])
    parts = [_as_labels(human, wanted, lambda name: _human_column(human, name))]
    model = snapshot.table(
        DERIVED.name,
        columns=["media_id", "label", "score", "producer"],
        filter=pc.field("kind") == "label",
    )
    parts.append(_as_labels(model, wanted, lambda name: _model_column(model, name)))
    return pa.concat_tables(parts)


def _as_labels(source: pa.Table, wanted: pa.Schema, column: Any) -> pa.Table:
    arrays = [source.column("media_id")]
    for field in list(wanted)[1:]:
        found = column(field.name)
        arrays.append(pa.nulls(source.num_rows, field.type) if found is None else found.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=wanted)


def _human_column(table: pa.Table, name: str) -> Any:
    if name.startswith("bbox_"):
        return pc.struct_field(table.column("bbox"), name.removeprefix("bbox_"))
    return table.column(_SOURCE.get(name, name))


def _model_column(table: pa.Table, name: str) -> Any:
    if name == "label_producer":
        return table.column("producer")
    if name == "value_type":
        return pa.array(["label"] * table.num_rows, pa.string())
    return table.column(name) if name in ("label", "score") else None


def annotations_of(snapshot: Snapshot, media_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """media id → its annotations (set, key, value, producer, revision, extra fields), sorted by set and key."""
    ids = pa.array(sorted(set(media_ids)), pa.string())
    if len(ids) == 0:
        return {}
    schema = snapshot.schema(ANNOTATIONS.name)
    extras = [f.name for f in extra_columns(schema)]
    columns = ["media_id", "annotation_set", "annotation_key", *_SHOWN, "producer", "revision", *extras]
    rows = snapshot.table(ANNOTATIONS.name, columns=columns, filter=pc.field("media_id").isin(ids)).to_pylist()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["annotation_set"], r["annotation_key"])):
        media_id = row.pop("media_id")
        value = row.pop("value_json")
        shown = {k: v for k, v in row.items() if v is not None and v != ""}
        if value is not None:
            shown["value"] = json.loads(value)
        out.setdefault(media_id, []).append(shown)
    return out


def label_changes(
    lake: Lake, a: int | Snapshot, b: int | Snapshot, keys: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """What changed in the values of the annotations ``keys`` names (``added`` / ``changed`` / ``removed``, as
    the snapshot diff found them): per row its media key, set, annotation key and the values before and after."""
    before = a if isinstance(a, Snapshot) else lake.snapshot(seq=a)
    after = b if isinstance(b, Snapshot) else lake.snapshot(seq=b)
    wanted = {k["media_id"] for found in keys.values() for k in found}
    old, new = _values(before, wanted), _values(after, wanted)
    names = {**_media_keys(before, wanted), **_media_keys(after, wanted)}
    changes = []
    for change, found in keys.items():
        for k in found:
            key = (k["media_id"], k["annotation_set"], k["annotation_key"])
            was, now = old.get(key, {}), new.get(key, {})
            fields = {c: [was.get(c), now.get(c)] for c in sorted(set(was) | set(now)) if was.get(c) != now.get(c)}
            changes.append(
                {
                    "change": change.removesuffix("_keys"),
                    "media_id": k["media_id"],
                    "media": names.get(k["media_id"], k["media_id"]),
                    "annotation_set": k["annotation_set"],
                    "annotation_key": k["annotation_key"],
                    "fields": fields,
                }
            )
    return changes


def _values(snapshot: Snapshot, media_ids: set[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    if not media_ids:
        return {}
    schema = snapshot.schema(ANNOTATIONS.name)
    extras = [f.name for f in extra_columns(schema)]
    columns = [*ANNOTATIONS.key, *(c for c in VALUE_COLUMNS if c != "source_content_sha256"), *extras]
    rows = snapshot.table(
        ANNOTATIONS.name, columns=columns, filter=pc.field("media_id").isin(pa.array(sorted(media_ids), pa.string()))
    ).to_pylist()
    out = {}
    for row in rows:
        key = (row.pop("media_id"), row.pop("annotation_set"), row.pop("annotation_key"))
        out[key] = {c: v for c, v in row.items() if v is not None}
    return out


def _media_keys(snapshot: Snapshot, media_ids: set[str]) -> dict[str, str]:
    wanted = pc.field("media_id").isin(pa.array(sorted(media_ids), pa.string()))
    media = snapshot.table(MEDIA.name, columns=["media_id", "key"], filter=wanted)
    return dict(zip(media.column("media_id").to_pylist(), media.column("key").to_pylist(), strict=True))
