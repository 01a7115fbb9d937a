"""Embedding a chunk of analysed objects: images and keyframes, text chunks, one vector per media item.

Runs in the main process while the probe workers decode the next objects; each model sees one batched call
per chunk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mm_platform.embed import Embedder
from mm_platform.ids import derived_id_for
from mm_platform.ingest.analyze import ANALYZE_VERSION, Analysis
from mm_platform.ingest.rows import ANALYZE_PRODUCER, Lineage, embedding_row, label_rows, mean_vector
from mm_platform.roles import ROLE_OF_MODALITY
from mm_platform.tables import DERIVED, EMBEDDINGS

__all__ = ["Pending", "chunk_id", "embed_pending", "keyframe_id"]


@dataclass
class Pending:
    """An analysed object waiting for its embeddings."""

    media_id: str
    sha256: str
    analysis: Analysis


def embed_pending(
    embedders: Mapping[str, Embedder[Any]],
    pending: Sequence[Pending],
    out: dict[str, list[dict[str, object]]],
    lineage_of: Callable[[Pending, Embedder[Any]], Lineage],
    label_top_k: int,
) -> None:
    """Embed the pending objects' images and texts in batches; append vectors and labels to ``out``."""
    image_embedder, text_embedder = embedders["image"], embedders["text"]
    images = [(p, ordinal, picture) for p in pending for ordinal, picture in p.analysis.images]
    texts = [(p, ordinal, text) for p in pending for ordinal, text in p.analysis.texts]
    per_media: dict[str, list[np.ndarray]] = defaultdict(list)
    if images:
        pictures = [picture for _, _, picture in images]
        if hasattr(image_embedder, "encode_with_labels"):
            vectors, labels = image_embedder.encode_with_labels(pictures, top_k=label_top_k)
        else:
            vectors, labels = image_embedder.encode(pictures), [[] for _ in pictures]
        for (p, ordinal, _), vector, top in zip(images, vectors, labels, strict=True):
            lineage = lineage_of(p, image_embedder)
            out[DERIVED.name] += label_rows(p.media_id, top, lineage, ordinal)
            if ordinal is not None:  # a keyframe: its own vector, subject = the keyframe's derived row
                subject = keyframe_id(p, ordinal)
                out[EMBEDDINGS.name].append(
                    embedding_row(
                        subject,
                        "derived",
                        p.media_id,
                        vector,
                        image_embedder.model_id,
                        image_embedder.revision,
                        lineage,
                    )
                )
            per_media[p.media_id].append(vector)
    if texts:
        vectors = text_embedder.encode([text for _, _, text in texts])
        for (p, ordinal, _), vector in zip(texts, vectors, strict=True):
            lineage = lineage_of(p, text_embedder)
            subject = chunk_id(p, ordinal)
            out[EMBEDDINGS.name].append(
                embedding_row(
                    subject, "derived", p.media_id, vector, text_embedder.model_id, text_embedder.revision, lineage
                )
            )
            per_media[p.media_id].append(vector)
    for p in pending:
        if p.media_id not in per_media:
            continue
        role = ROLE_OF_MODALITY[p.analysis.probed.modality]
        embedder = embedders[role]
        lineage = lineage_of(p, embedder)
        vector = mean_vector(np.stack(per_media[p.media_id]))
        out[EMBEDDINGS.name].append(
            embedding_row(p.media_id, "media", p.media_id, vector, embedder.model_id, embedder.revision, lineage)
        )


def keyframe_id(p: Pending, ordinal: int) -> str:
    return derived_id_for(p.media_id, "keyframe", ordinal, ANALYZE_PRODUCER, ANALYZE_VERSION)


def chunk_id(p: Pending, ordinal: int) -> str:
    return derived_id_for(p.media_id, "text_chunk", ordinal, ANALYZE_PRODUCER, ANALYZE_VERSION)
