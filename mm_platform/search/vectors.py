"""Media-level vectors of one model in one snapshot, read from the ``embeddings`` table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from mm_platform.lake import Snapshot
from mm_platform.tables import EMBEDDINGS

__all__ = ["media_vector_filter", "read_keys", "read_vectors", "vectors_from_arrow"]

_KEY_COLUMNS = ("media_id", "model_revision", "source_content_sha256")


def media_vector_filter(model_id: str) -> pc.Expression:
    """The rows a search ranks: one vector per media object (keyframe and chunk vectors are ``derived``)."""
    return (pc.field("model_id") == model_id) & (pc.field("subject_kind") == "media")


def read_keys(snapshot: Snapshot, model_id: str) -> pa.Table:
    """``media_id`` and ``fingerprint`` of every media vector of ``model_id`` (no vectors: cheap to diff).

    The fingerprint (media id, model revision, content hash) changes exactly when the vector can: new bytes
    under the same URI or a new model revision. It is how a cached index learns which of its rows are stale.
    """
    table = snapshot.table(EMBEDDINGS.name, columns=list(_KEY_COLUMNS), filter=media_vector_filter(model_id))
    return _keys(table)


def read_vectors(
    snapshot: Snapshot, model_id: str, media_ids: pa.Array | None = None
) -> tuple[pa.Table, NDArray[np.float32]]:
    """(keys as ``read_keys`` gives them, unit vectors) of ``model_id``, optionally only for ``media_ids``."""
    where = media_vector_filter(model_id)
    if media_ids is not None:
        where = where & pc.field("media_id").isin(media_ids)
    table = snapshot.table(EMBEDDINGS.name, columns=[*_KEY_COLUMNS, "vector"], filter=where)
    return _keys(table), vectors_from_arrow(table.column("vector"), model_id)


def _keys(table: pa.Table) -> pa.Table:
    fingerprint = pc.binary_join_element_wise(
        table.column("media_id"),
        table.column("model_revision"),
        pc.fill_null(table.column("source_content_sha256"), ""),
        "|",
    )
    return pa.table({"media_id": table.column("media_id"), "fingerprint": fingerprint}).combine_chunks()


def vectors_from_arrow(column: pa.ChunkedArray | pa.Array, model_id: str = "") -> NDArray[np.float32]:
    """A ``list<float32>`` column as an ``(n, dim)`` float32 matrix (one model has one width)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    lengths = pc.list_value_length(array)
    low, high = pc.min_max(lengths).values()
    if low != high:
        raise ValueError(f"vectors of {model_id or 'one model'} have different widths ({low} and {high})")
    flat = pc.list_flatten(array).to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.reshape(len(array), int(high.as_py())), dtype=np.float32)
