"""Rows for the lake's tables from an analysis, with the lineage every row carries."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from mm_platform.ids import derived_id_for
from mm_platform.ingest.analyze import ANALYZE_VERSION, Analysis, DerivedArtifact
from mm_platform.tables import METADATA

ANALYZE_PRODUCER = "analyze"
_METADATA_COLUMNS = frozenset(f.name for f in METADATA.schema)


@dataclass(frozen=True)
class Lineage:
    """Who produced a row, from which bytes, in which run and batch."""

    source_content_sha256: str | None
    """None when no byte could be read (an object refused by its source)."""
    producer: str
    producer_version: str
    run_id: str
    partition: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def producer_key(media_id: str, producer: str) -> str:
    """The rows one producer made for one media item (replaced together when that producer re-runs)."""
    return f"{media_id}|{producer}"


def metadata_row(media_id: str, sha256: str, analysis: Analysis, run_id: str, partition: str) -> dict[str, object]:
    fields = dict(analysis.probed.fields)
    row: dict[str, object] = {
        "media_id": media_id,
        "content_sha256": sha256,
        "modality": analysis.probed.modality,
        "mime_type": analysis.probed.content_type.mime_type,
    }
    for name, value in fields.items():
        if name == "exif" and isinstance(value, Mapping):
            row["exif"] = list(value.items()) or None
        elif name == "format" or name in _METADATA_COLUMNS or value is None or isinstance(value, (int, float, str)):
            row[name] = value  # unknown scalar fields become new columns (schema evolution)
    row["text_chunks"] = len(analysis.texts)
    row.update(Lineage(sha256, ANALYZE_PRODUCER, ANALYZE_VERSION, run_id, partition).as_dict())
    return row


def derived_row(
    media_id: str, artifact: DerivedArtifact, lineage: Lineage, *, label: str | None = None, score: float | None = None
) -> dict[str, object]:
    return {
        "derived_id": derived_id_for(
            media_id, artifact.kind, artifact.ordinal, lineage.producer, lineage.producer_version
        ),
        "media_id": media_id,
        "kind": artifact.kind,
        "ordinal": artifact.ordinal,
        "mime_type": artifact.mime_type,
        "data": artifact.data,
        "width": artifact.width,
        "height": artifact.height,
        "timestamp_s": artifact.timestamp_s,
        "text": artifact.text,
        "label": label,
        "score": score,
        "params": None,
        "producer_key": producer_key(media_id, lineage.producer),
        **lineage.as_dict(),
    }


def label_rows(
    media_id: str,
    labels: Sequence[tuple[str, float]],
    lineage: Lineage,
    keyframe: int | None,
) -> list[dict[str, object]]:
    """Top-k model labels as ``derived`` rows: "images model X labels 'orange' above 0.9" is a filter."""
    base = 0 if keyframe is None else (keyframe + 1) * 100
    rows = []
    for rank, (label, score) in enumerate(labels):
        artifact = DerivedArtifact("label", base + rank)
        row = derived_row(media_id, artifact, lineage, label=label, score=float(score))
        row["params"] = json.dumps({"rank": rank, "keyframe": keyframe})
        rows.append(row)
    return rows


def embedding_row(
    subject_id: str,
    subject_kind: str,
    media_id: str,
    vector: NDArray[np.float32],
    model_id: str,
    revision: str,
    lineage: Lineage,
) -> dict[str, object]:
    return {
        "subject_id": subject_id,
        "subject_kind": subject_kind,
        "media_id": media_id,
        "model_id": model_id,
        "model_revision": revision,
        "dim": int(vector.shape[0]),
        "normalized": True,
        "vector": vector.astype(np.float32),
        "producer_key": producer_key(media_id, lineage.producer),
        **lineage.as_dict(),
    }


def mean_vector(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """One media-level vector from several (keyframes, text chunks): the normalised mean."""
    mean = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm).astype(np.float32) if norm > 0 else vectors[0]


def quarantine_row(
    media_id: str, uri: str, sha256: str | None, stage: str, reason: str, detail: str, lineage: Lineage
) -> dict[str, object]:
    return {
        "media_id": media_id,
        "uri": uri,
        "content_sha256": sha256,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "quarantined_at": datetime.now(UTC),
        **lineage.as_dict(),
    }
