"""Row-level lineage in one snapshot: a media object's rows in every table, and a vector back to its bytes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from mm_platform.errors import MMPlatformError
from mm_platform.lake import Lake, Snapshot
from mm_platform.lineage.history import object_versions, publish_seq_by_partition, snapshots_with_media
from mm_platform.lineage.model import EmbeddingLineage, MediaLineage, RowLineage, SourceVersion
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA, METADATA, QUARANTINE

__all__ = ["LineageNotFoundError", "embedding_lineage", "media_lineage", "resolve_media_id"]

_MEDIA_ID = re.compile(r"[0-9a-f]{32}")
_DERIVED_DETAILS = ("kind", "ordinal", "label", "score", "mime_type", "timestamp_s")
_EMBEDDING_DETAILS = ("model_id", "model_revision", "subject_kind", "dim", "normalized", "media_id")


class LineageNotFoundError(MMPlatformError):
    """No media row (or embedding) matches what was asked for in the snapshot."""


def resolve_media_id(snapshot: Snapshot, ref: str, *, paths: bool = True) -> str:
    """A media id from a media id, a URI, a source key or (when ``paths``) a local file path.

    A server passes ``paths=False``: then nothing in ``ref`` reaches the file system, it is only looked up in
    the media table.
    """
    candidates = [ref]
    if paths and "://" not in ref and Path(ref).exists():
        candidates.append(Path(ref).resolve().as_uri())
    for column in ("media_id", "uri", "key"):
        ids = snapshot.table(MEDIA.name, columns=["media_id"], filter=pc.field(column).isin(candidates))
        found = sorted(set(ids.column("media_id").to_pylist()))
        if len(found) == 1:
            return str(found[0])
        if len(found) > 1:
            raise LineageNotFoundError(
                f"{ref!r} matches {len(found)} media rows by {column}", hint="give the full URI or the media id"
            )
    raise LineageNotFoundError(
        f"no media row for {ref!r} in snapshot {snapshot.seq}",
        hint="give a media id, a URI (file:///…, s3://…), a source key or a path; or another --snapshot",
    )


def media_lineage(
    lake: Lake, ref: str, *, seq: int | None = None, history: bool = True, paths: bool = True
) -> MediaLineage:
    """Source version → metadata → derived rows → embeddings (with publish seqs) → the snapshots with it,
    and which bytes of the object each of those snapshots held (``versions``: its history across overwrites).
    ``paths``: whether ``ref`` may be a local file path (see ``resolve_media_id``)."""
    snapshot = lake.snapshot(seq=seq)
    media_id = resolve_media_id(snapshot, ref, paths=paths)
    source = _source(snapshot, media_id)
    tracer = _Tracer(lake, snapshot, source.content_sha256)
    by_media = pc.field("media_id") == media_id
    metadata = tracer.rows(METADATA.name, by_media, "media_id", ())
    derived = tracer.rows(DERIVED.name, by_media, "derived_id", _DERIVED_DETAILS)
    embeddings = tracer.rows(EMBEDDINGS.name, by_media, "subject_id", _EMBEDDING_DETAILS)
    quarantine = tracer.rows(QUARANTINE.name, by_media, "media_id", ("stage", "reason", "detail"))
    presences = snapshots_with_media(lake, media_id) if history else []
    return MediaLineage(
        snapshot_seq=snapshot.seq,
        source=source,
        metadata=metadata[0] if metadata else None,
        derived=sorted(derived, key=lambda r: (str(r.details["kind"]), int(r.details["ordinal"]))),
        embeddings=sorted(embeddings, key=lambda r: (str(r.details["model_id"]), str(r.details["subject_kind"]))),
        quarantine=quarantine[0] if quarantine else None,
        snapshots=presences,
        versions=object_versions(presences, source.content_sha256),
    )


def embedding_lineage(lake: Lake, subject_id: str, model_id: str, *, seq: int | None = None) -> EmbeddingLineage:
    """From a vector (subject id + model) back to its bytes: its media row and content hash, checked."""
    snapshot = lake.snapshot(seq=seq)
    where = (pc.field("subject_id") == subject_id) & (pc.field("model_id") == model_id)
    probe = snapshot.table(EMBEDDINGS.name, columns=["media_id"], filter=where)
    if probe.num_rows == 0:
        raise LineageNotFoundError(
            f"no embedding of {subject_id!r} by {model_id!r} in snapshot {snapshot.seq}",
            hint="`mmp lineage MEDIA` lists a media object's embeddings with their subject ids and models",
        )
    source = _source(snapshot, str(probe.column("media_id")[0].as_py()))
    tracer = _Tracer(lake, snapshot, source.content_sha256)
    embedding = tracer.rows(EMBEDDINGS.name, where, "subject_id", _EMBEDDING_DETAILS)[0]
    subject = None
    if embedding.details["subject_kind"] == "derived":
        rows = tracer.rows(DERIVED.name, pc.field("derived_id") == subject_id, "derived_id", _DERIVED_DETAILS)
        subject = rows[0] if rows else None
    return EmbeddingLineage(snapshot.seq, embedding, subject, source, embedding.matches_content)


def _source(snapshot: Snapshot, media_id: str) -> SourceVersion:
    rows = snapshot.table(MEDIA.name, filter=pc.field("media_id") == media_id).to_pylist()
    if not rows:
        raise LineageNotFoundError(f"no media row {media_id!r} in snapshot {snapshot.seq}")
    row = rows[0]
    fields = SourceVersion.__dataclass_fields__
    return SourceVersion(**{name: row.get(name) for name in fields})


class _Tracer:
    """Reads rows of one snapshot and turns them into ``RowLineage`` values."""

    def __init__(self, lake: Lake, snapshot: Snapshot, content_sha256: str | None) -> None:
        self.snapshot = snapshot
        self.content_sha256 = content_sha256
        self.seqs = publish_seq_by_partition(lake.state(), snapshot.seq)

    def rows(self, table: str, where: Any, id_column: str, details: tuple[str, ...]) -> list[RowLineage]:
        names = self.snapshot.schema(table).names
        wanted = [id_column, "producer", "producer_version", "run_id", "partition", "source_content_sha256"]
        wanted += [d for d in details if d in names and d not in wanted]
        rows = self.snapshot.table(table, columns=wanted, filter=where).to_pylist()
        return [
            RowLineage(
                table=table,
                row_id=str(row[id_column]),
                producer=row["producer"],
                producer_version=row["producer_version"],
                run_id=row["run_id"],
                partition=row["partition"],
                source_content_sha256=row["source_content_sha256"],
                publish_seq=self.seqs.get(row["partition"]),
                matches_content=row["source_content_sha256"] == self.content_sha256,
                details={d: row[d] for d in details if d in row},
            )
            for row in rows
        ]
