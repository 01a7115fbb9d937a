"""Row-level lineage over the lake (plain Python, no Dagster).

``media_lineage``: a source object version → its metadata row → derived rows → embeddings (model, revision,
run, partition, publish seq) → the snapshots that contain it. ``embedding_lineage``: a vector (subject id +
model) back to the bytes it was computed from (media row and content hash, checked).
"""

from mm_platform.lineage.history import object_versions, publish_seq_by_partition, snapshots_with_media
from mm_platform.lineage.model import (
    EmbeddingLineage,
    MediaLineage,
    ObjectVersion,
    RowLineage,
    SnapshotPresence,
    SourceVersion,
)
from mm_platform.lineage.trace import LineageNotFoundError, embedding_lineage, media_lineage, resolve_media_id

__all__ = [
    "EmbeddingLineage",
    "LineageNotFoundError",
    "MediaLineage",
    "ObjectVersion",
    "RowLineage",
    "SnapshotPresence",
    "SourceVersion",
    "embedding_lineage",
    "media_lineage",
    "object_versions",
    "publish_seq_by_partition",
    "resolve_media_id",
    "snapshots_with_media",
]
