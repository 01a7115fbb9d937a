"""What a batch writes: a normal batch writes every table; shadow re-embedding only its own models' rows.

Shadow re-embedding builds a new model's vectors (and labels) beside the active model's, without touching
registration, verdicts or other models' rows, so search keeps serving the active model until the new one
covers everything and is activated. The differences from a normal batch are all here, in one class.
"""

from __future__ import annotations

from collections.abc import Iterable

from mm_platform.ingest.rows import producer_key
from mm_platform.lake import RowFilter
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA, METADATA, QUARANTINE, SETTINGS

__all__ = ["RESULT_TABLES", "TABLES", "BatchScope", "ShadowReembedding"]

TABLES = (MEDIA.name, METADATA.name, DERIVED.name, EMBEDDINGS.name, QUARANTINE.name)
RESULT_TABLES = (METADATA.name, DERIVED.name, EMBEDDINGS.name, QUARANTINE.name)
_MODEL_TABLES = (DERIVED.name, EMBEDDINGS.name)


class BatchScope:
    """A normal batch: registers its objects and replaces their earlier rows in the partition, table by table."""

    copies_within_batch = True
    """A content seen twice in the batch is analysed once; the second object copies the first's results."""
    writes_registration = True
    """Media rows, metadata, analysis-derived rows and the first batch's active-model settings are written."""
    written: tuple[str, ...] = (*TABLES, SETTINGS.name)
    copied: tuple[str, ...] = RESULT_TABLES
    """The tables whose rows an object copies from an earlier object of the same content in the batch."""

    def replaced(self, media_ids: tuple[str, ...], partition: str) -> tuple[tuple[str, ...], tuple[RowFilter, ...]]:
        """The tables the batch replaces rows in, and which rows."""
        return TABLES, (RowFilter("partition", (partition,)), RowFilter("media_id", media_ids))

    def keep_copied(self, table: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
        """Of the rows copied from earlier results, those this batch writes."""
        return rows


class ShadowReembedding(BatchScope):
    """Only the configured models' vectors and labels are (re)built, beside other models' rows."""

    # A shadow batch re-embeds duplicates separately: copying a keyframe vector needs the keyframe rows,
    # which a shadow batch does not write.
    copies_within_batch = False
    writes_registration = False
    written = _MODEL_TABLES
    copied = _MODEL_TABLES

    def __init__(self, model_ids: Iterable[str]) -> None:
        self.model_ids = tuple(model_ids)
        """The models being re-embedded, in the embedders' order."""

    def replaced(self, media_ids: tuple[str, ...], partition: str) -> tuple[tuple[str, ...], tuple[RowFilter, ...]]:
        own = tuple(producer_key(media_id, model) for media_id in media_ids for model in self.model_ids)
        return _MODEL_TABLES, (RowFilter("producer_key", own),)

    def keep_copied(self, table: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
        # The rest of the media stays as published.
        return [r for r in rows if table in _MODEL_TABLES and r["producer"] in self.model_ids]
