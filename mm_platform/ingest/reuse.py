"""Work is keyed by (content hash, producer, producer version): identical bytes are processed once.

Before a batch runs, the published snapshot says which contents already have current results; those are
copied under the new media id instead of being decoded and embedded again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.ids import derived_id_for
from mm_platform.ingest.analyze import ANALYZE_VERSION
from mm_platform.ingest.rows import producer_key
from mm_platform.lake import Snapshot
from mm_platform.quality.row_gate import VALIDATION_STAGE
from mm_platform.roles import ROLE_OF_MODALITY
from mm_platform.tables import DERIVED, EMBEDDINGS, METADATA, QUARANTINE


@dataclass(frozen=True)
class ModelRef:
    """An embedding model as rows name it."""

    model_id: str
    revision: str


@dataclass
class ReuseIndex:
    """Which content hashes already have current results in a snapshot."""

    snapshot: Snapshot
    complete: set[str] = field(default_factory=set)
    quarantined: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, snapshot: Snapshot, models: dict[str, ModelRef]) -> ReuseIndex:
        index = cls(snapshot)
        version = pc.field("producer_version") == ANALYZE_VERSION
        metadata = snapshot.table(METADATA.name, columns=["content_sha256", "modality", "text_chunks"], filter=version)
        vectors = snapshot.table(
            EMBEDDINGS.name,
            columns=["source_content_sha256", "model_id", "model_revision"],
            filter=pc.field("subject_kind") == "media",
        )
        embedded = {
            (row["source_content_sha256"], row["model_id"], row["model_revision"]) for row in vectors.to_pylist()
        }
        for row in metadata.to_pylist():
            sha, modality = row["content_sha256"], row["modality"]
            role = ROLE_OF_MODALITY.get(modality)
            needs_vector = role == "image" or (role == "text" and (row.get("text_chunks") or 0) > 0)
            if not needs_vector:
                index.complete.add(sha)
                continue
            model = models[role]  # type: ignore[index]
            if (sha, model.model_id, model.revision) in embedded:
                index.complete.add(sha)
        quarantine = snapshot.table(QUARANTINE.name, columns=["content_sha256", "producer_version", "stage"])
        for row in quarantine.to_pylist():
            # Unreadable objects and row-rule failures (which depend on models and rules that may be fixed
            # since) are tried again; a verdict on the bytes themselves is reused.
            if (
                row["content_sha256"]
                and row["producer_version"] == ANALYZE_VERSION
                and row["stage"] not in ("register", VALIDATION_STAGE)
            ):
                index.quarantined.add(row["content_sha256"])
        return index

    def rows_for(self, shas: Iterable[str]) -> dict[str, pa.Table]:
        """The published rows derived from these contents, per table."""
        wanted = pa.array(sorted(set(shas)), pa.string())
        if len(wanted) == 0:
            return {}
        by_content, by_source = pc.field("content_sha256").isin(wanted), pc.field("source_content_sha256").isin(wanted)
        return {
            METADATA.name: self.snapshot.table(METADATA.name, filter=by_content),
            DERIVED.name: self.snapshot.table(DERIVED.name, filter=by_source),
            EMBEDDINGS.name: self.snapshot.table(EMBEDDINGS.name, filter=by_source),
            QUARANTINE.name: self.snapshot.table(QUARANTINE.name, filter=by_content),
        }


def rekey(
    rows: dict[str, list[dict[str, object]]], media_id: str, uri: str, partition: str
) -> dict[str, list[dict[str, object]]]:
    """Rows of one content, copied under another media id and URI (their production lineage is kept)."""
    derived_ids: dict[object, str] = {}
    out: dict[str, list[dict[str, object]]] = {name: [] for name in rows}
    for row in rows.get(DERIVED.name, []):
        new = dict(row, media_id=media_id, partition=partition)
        new["derived_id"] = derived_id_for(
            media_id,
            str(row["kind"]),
            int(str(row["ordinal"])),
            str(row["producer"]),
            str(row["producer_version"]),
        )
        new["producer_key"] = producer_key(media_id, str(row["producer"]))
        derived_ids[row["derived_id"]] = str(new["derived_id"])
        out[DERIVED.name].append(new)
    for row in rows.get(EMBEDDINGS.name, []):
        subject = (
            media_id if row["subject_kind"] == "media" else derived_ids.get(row["subject_id"], str(row["subject_id"]))
        )
        out[EMBEDDINGS.name].append(
            dict(
                row,
                subject_id=subject,
                media_id=media_id,
                partition=partition,
                producer_key=producer_key(media_id, str(row["producer"])),
            )
        )
    out[METADATA.name] = [dict(row, media_id=media_id, partition=partition) for row in rows.get(METADATA.name, [])]
    # A quarantine row names its own object: identical bytes under two names are two rejected objects.
    quarantine = rows.get(QUARANTINE.name, [])
    out[QUARANTINE.name] = [dict(row, media_id=media_id, uri=uri, partition=partition) for row in quarantine]
    return out


def group_by_content(tables: dict[str, pa.Table]) -> dict[str, dict[str, list[dict[str, object]]]]:
    """Rows per content hash, one source media id per content (the first seen), per table."""
    by_sha: dict[str, dict[str, list[dict[str, object]]]] = {}
    chosen: dict[str, object] = {}
    for name, table in tables.items():
        sha_column = "content_sha256" if name in (METADATA.name, QUARANTINE.name) else "source_content_sha256"
        for row in table.to_pylist():
            sha = str(row[sha_column])
            owner = chosen.setdefault(sha, row["media_id"])
            if row["media_id"] != owner:
                continue
            by_sha.setdefault(sha, {}).setdefault(name, []).append(row)
    return by_sha
