"""Search results joined with their media row, selected metadata and thumbnail; the ``--where`` candidates."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.annotations.query import annotations_of, label_rows, label_schema
from mm_platform.lake import Snapshot
from mm_platform.search.filters import ParsedFilter, compile_filter, searchable_schema
from mm_platform.search.row_index import RowIndex
from mm_platform.tables import DERIVED, MEDIA, METADATA

__all__ = ["DEFAULT_METADATA", "SearchHit", "filter_schema", "hydrate", "matching_media"]

DEFAULT_METADATA = ("mime_type", "width", "height", "format", "duration_s", "page_count", "title", "captured_at")
"""Metadata columns every hit carries (plus those a filter names and those asked for)."""


@dataclass(frozen=True)
class SearchHit:
    """One search result."""

    rank: int
    """1-based position in the results."""
    media_id: str
    uri: str
    key: str
    score: float
    """Similarity in the route's own scale: a cosine for vector routes, the label-bridge score otherwise."""
    route: str
    """How the query reached this media: ``clip``, ``label-bridge``, ``text`` or ``image``."""
    model_id: str
    modality: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = None
    """JPEG bytes of the media's thumbnail (images and video), when it has one and it was asked for."""
    fused_score: float | None = None
    """When several routes answered (text → images and documents): the score that interleaved them (a cosine
    in the shared model's space for ``scale``, the reciprocal-rank-fusion score for ``rrf``)."""
    fusion: str = "single"
    """How the routes' lists were combined: ``single``, ``scale``, ``rrf`` or ``group``
    (``mm_platform.search.fusion``)."""
    annotations: list[dict[str, Any]] = field(default_factory=list)
    """The media's annotations (set, key, label, score, bbox, value, producer, revision, extra fields)."""
    thumbnail_bytes: int | None = None
    """The thumbnail's size when only its size was read (a server fetches the bytes by URL)."""

    def to_dict(self, *, thumbnail: bool = False) -> dict[str, Any]:
        """JSON-ready; the thumbnail as base64 only when asked (else its size in bytes)."""
        out = {k: v for k, v in self.__dict__.items() if k != "thumbnail"}
        out["metadata"] = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in self.metadata.items()}
        if thumbnail:
            out["thumbnail_jpeg_base64"] = None if self.thumbnail is None else base64.b64encode(self.thumbnail).decode()
        else:
            out["thumbnail_bytes"] = self.thumbnail_bytes if self.thumbnail is None else len(self.thumbnail)
        return out


TIME_COLUMNS = ("captured_at",)
"""Metadata columns stored as ISO-8601 text (EXIF has no time zone type) that filters compare as times."""
_UTC = pa.timestamp("us", tz="UTC")


def filter_schema(snapshot: Snapshot) -> pa.Schema:
    """The columns a ``--where`` filter may name: media's scalar columns, then metadata's, then the label
    columns of annotations and model labels (``mm_platform.annotations.query``); the first wins a name.
    ``TIME_COLUMNS`` are typed as UTC timestamps, so ``captured_at > '2020-01-01'`` compares times, not text."""
    schema = searchable_schema(snapshot.schema(MEDIA.name), snapshot.schema(METADATA.name), label_schema(snapshot))
    for name in TIME_COLUMNS:
        if name in schema.names:
            schema = schema.set(schema.get_field_index(name), pa.field(name, _UTC))
    return schema


def as_times(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """ISO-8601 text → UTC timestamps. A time without an offset is read as UTC (as the filter reads a naive
    literal); text that is not such a time becomes null (it matches no comparison, like a missing value)."""
    text = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    zoned = pc.match_substring_regex(text, r"([+-]\d\d:\d\d|Z)$")
    fixed = pc.if_else(zoned, text, pc.binary_join_element_wise(text, pa.scalar("+00:00"), ""))
    valid = pc.match_substring_regex(fixed, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")
    return pc.cast(pc.if_else(valid, fixed, pa.scalar(None, pa.string())), _UTC)


def matching_media(snapshot: Snapshot, where: ParsedFilter | str) -> pa.Array:
    """Ids of the active media whose media + metadata row (and one of its label rows, when the filter names a
    label column) satisfies the filter."""
    schema = filter_schema(snapshot)
    parsed = compile_filter(where, schema) if isinstance(where, str) else where
    media_names = set(snapshot.schema(MEDIA.name).names)
    meta_names = set(snapshot.schema(METADATA.name).names) - media_names
    media_cols = sorted(c for c in parsed.columns if c in media_names)
    meta_cols = sorted(c for c in parsed.columns if c in meta_names)
    label_cols = sorted(c for c in parsed.columns if c not in media_names and c not in meta_names)
    active = pc.field("status") == "active"
    table = snapshot.table(MEDIA.name, columns=["media_id", *media_cols], filter=active)
    if meta_cols:
        metadata = snapshot.table(METADATA.name, columns=["media_id", *meta_cols])
        for name in TIME_COLUMNS:
            if name in meta_cols:
                metadata = metadata.set_column(metadata.schema.get_field_index(name), name, as_times(metadata[name]))
        table = table.join(metadata, "media_id", join_type="left outer")
    if label_cols:  # one row per label: a media item matches when any of its rows does
        table = table.join(label_rows(snapshot, label_cols), "media_id", join_type="left outer")
        return pc.unique(table.filter(parsed.expression).column("media_id").combine_chunks())
    return table.filter(parsed.expression).column("media_id").combine_chunks()


def hydrate(
    snapshot: Snapshot,
    ranked: Sequence[tuple[str, float, str, str, float | None]],
    *,
    columns: Sequence[str] = DEFAULT_METADATA,
    thumbnails: bool = True,
    fusion: str = "single",
    rows: RowIndex | None = None,
) -> list[SearchHit]:
    """Hits for ranked ``(media_id, score, route, model_id, fused)``, in order, joined with their rows.

    ``rows``: the snapshot's rows held in memory (a server's); then thumbnails are given by size only."""
    ids = pa.array([r[0] for r in ranked], pa.string())
    in_ids = pc.field("media_id").isin(ids)
    meta_names = snapshot.schema(METADATA.name).names
    wanted = [c for c in dict.fromkeys(columns) if c in meta_names and c != "media_id"]
    sizes: dict[str, int] = {}
    if rows is not None:
        listed = [r[0] for r in ranked]
        media = rows.rows(MEDIA.name, listed)
        metadata = rows.rows(METADATA.name, listed, ["media_id", *wanted])
        sizes = rows.thumbnail_sizes(listed) if thumbnails else {}
    else:
        media = {r["media_id"]: r for r in snapshot.table(MEDIA.name, filter=in_ids).to_pylist()}
        metadata = {
            r["media_id"]: r
            for r in snapshot.table(METADATA.name, columns=["media_id", *wanted], filter=in_ids).to_pylist()
        }
    thumbs: dict[str, bytes] = {}
    if thumbnails and rows is None:
        found = snapshot.table(
            DERIVED.name, columns=["media_id", "data"], filter=in_ids & (pc.field("kind") == "thumbnail")
        ).to_pylist()
        thumbs = {r["media_id"]: r["data"] for r in found if r["data"] is not None}
    annotations = annotations_of(snapshot, media)
    hits: list[SearchHit] = []
    for media_id, score, route, model_id, fused in ranked:
        row = media.get(media_id)
        if row is None:  # a vector whose media row is gone (cannot happen in a published snapshot)
            continue
        extra = metadata.get(media_id, {})
        hits.append(
            SearchHit(
                rank=len(hits) + 1,
                media_id=media_id,
                uri=row["uri"],
                key=row["key"],
                score=score,
                route=route,
                model_id=model_id,
                modality=row.get("modality"),
                metadata={c: extra.get(c) for c in wanted},
                thumbnail=thumbs.get(media_id),
                thumbnail_bytes=sizes.get(media_id),
                fused_score=fused,
                annotations=annotations.get(media_id, []),
                fusion=fusion,
            )
        )
    return hits
