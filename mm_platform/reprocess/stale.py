"""What is stale for the current configuration, per table and why ("1,204 rows: image model rev A → rev B")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow.compute as pc

from mm_platform.annotations.schema import ANNOTATIONS
from mm_platform.ingest.analyze import ANALYZE_VERSION
from mm_platform.ingest.reuse import ModelRef
from mm_platform.lake import Snapshot
from mm_platform.quality.invariants import embeddable_media
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA, METADATA


@dataclass(frozen=True)
class StaleItem:
    """A count of rows that the current configuration would produce differently."""

    table: str
    rows: int
    reason: str

    def __str__(self) -> str:
        return f"{self.table}: {self.rows:,} rows: {self.reason}"


def stale_report(snapshot: Snapshot, models: dict[str, ModelRef]) -> list[StaleItem]:
    items: list[StaleItem] = []
    metadata = snapshot.table(METADATA.name, columns=["producer_version"])
    for version, count in Counter(metadata.column("producer_version").to_pylist()).items():
        if version != ANALYZE_VERSION:
            items.append(StaleItem(METADATA.name, count, f"extractor analyze v{version} → v{ANALYZE_VERSION}"))
    derived = snapshot.table(DERIVED.name, columns=["kind", "producer", "producer_version"])
    for (kind, producer, version), count in Counter(
        zip(*(derived.column(c).to_pylist() for c in ("kind", "producer", "producer_version")), strict=True)
    ).items():
        if producer == "analyze" and version != ANALYZE_VERSION:
            items.append(StaleItem(DERIVED.name, count, f"{kind} from analyze v{version} → v{ANALYZE_VERSION}"))
    vectors = snapshot.table(
        EMBEDDINGS.name, columns=["media_id", "model_id", "model_revision"], filter=pc.field("subject_kind") == "media"
    )
    rows = vectors.to_pylist()
    for role, model in models.items():
        media = embeddable_media(snapshot, role)
        current = {
            r["media_id"] for r in rows if r["model_id"] == model.model_id and r["model_revision"] == model.revision
        }
        for (model_id, revision), count in Counter(
            (r["model_id"], r["model_revision"])
            for r in rows
            if r["media_id"] in media and r["model_id"] == model.model_id and r["model_revision"] != model.revision
        ).items():
            items.append(
                StaleItem(EMBEDDINGS.name, count, f"{role} model {model_id} rev {revision} → rev {model.revision}")
            )
        missing = [m for m in media if m not in current]
        if missing:
            others = Counter(r["model_id"] for r in rows if r["media_id"] in media and r["model_id"] != model.model_id)
            came_from = f" (have {', '.join(sorted(others))})" if others else ""
            items.append(
                StaleItem(EMBEDDINGS.name, len(missing), f"{role} media without a {model.model_id} vector{came_from}")
            )
    items += stale_annotations(snapshot)
    return items


def stale_annotations(snapshot: Snapshot) -> list[StaleItem]:
    """Annotations made on bytes their object no longer has (it was overwritten since they were attached).

    Nothing re-derives them: a person (or the team's tool) has to look again. They stay, reported per set,
    until the set is attached again.
    """
    annotations = snapshot.table(ANNOTATIONS.name, columns=["media_id", "annotation_set", "source_content_sha256"])
    if annotations.num_rows == 0:
        return []
    media = snapshot.table(MEDIA.name, columns=["media_id", "content_sha256"], filter=pc.field("status") == "active")
    joined = annotations.join(media, "media_id", join_type="inner")
    changed = joined.filter(pc.not_equal(joined.column("source_content_sha256"), joined.column("content_sha256")))
    return [
        StaleItem(ANNOTATIONS.name, count, f"set {name}: made on earlier bytes of their object (attach the set again)")
        for name, count in sorted(Counter(changed.column("annotation_set").to_pylist()).items())
    ]


def media_needing_work(snapshot: Snapshot, models: dict[str, ModelRef]) -> tuple[list[str], list[str]]:
    """(media to re-analyse fully: stale extractor, media needing only new vectors)."""
    metadata = snapshot.table(METADATA.name, columns=["media_id", "producer_version"])
    stale_meta = {r["media_id"] for r in metadata.to_pylist() if r["producer_version"] != ANALYZE_VERSION}
    vectors = snapshot.table(
        EMBEDDINGS.name, columns=["media_id", "model_id", "model_revision"], filter=pc.field("subject_kind") == "media"
    ).to_pylist()
    have = {(r["media_id"], r["model_id"], r["model_revision"]) for r in vectors}
    need_vectors: set[str] = set()
    for role, model in models.items():
        for media_id in embeddable_media(snapshot, role):
            if (media_id, model.model_id, model.revision) not in have and media_id not in stale_meta:
                need_vectors.add(media_id)
    return sorted(stale_meta), sorted(need_vectors)
