"""Text → images through the image model's labels (``LabelBridge``), vectorised over a snapshot's label rows.

The label rows of a snapshot are read and indexed once per process (per derived-table version and model);
a query then costs two products with the 1000 label vectors and three ``bincount`` passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from mm_platform.embed import LabelBridge, embedder_for
from mm_platform.lake import Snapshot
from mm_platform.search.memo import BoundedMemo
from mm_platform.tables import DERIVED

__all__ = ["BridgeScores", "bridge_scores"]

# Label rows of a keyframe have ordinals (keyframe + 1) * 100 + rank (ingest/rows.py): one label set per frame.
_LABEL_SET_STRIDE = 100
_MEMO: BoundedMemo[tuple[str, tuple[str, int], str], _LabelSets] = BoundedMemo(4)


@dataclass(frozen=True)
class BridgeScores:
    """Label-bridge results for every image that has labels."""

    media_ids: pa.Array
    scores: NDArray[np.float32]
    """The bridge's score (softmax weighting; its ranking measured best): the rank order."""
    cosines: NDArray[np.float32]
    """Confidence-weighted mean MiniLM cosine between the query and the image's labels: the same scale as a
    document's cosine, so image and document hits can be interleaved."""


@dataclass(frozen=True)
class _LabelSets:
    """Label rows grouped into label sets (an image has one, a video one per keyframe)."""

    media: pa.Array
    """Distinct media ids; ``group_media`` indexes it."""
    group_of_row: NDArray[np.intp]
    group_media: NDArray[np.int64]
    label_index: NDArray[np.int64]
    """Each row's position in the bridge's label list."""
    confidence: NDArray[np.float32]
    """Each row's classifier confidence (0 for a label the bridge does not know)."""


def bridge_scores(snapshot: Snapshot, model_id: str, query: str) -> BridgeScores:
    """Scores from the image model's labels; a video counts its best keyframe (the one with the best score)."""
    bridge = LabelBridge(embedder_for("minilm", "text"))
    sets = _label_sets(snapshot, model_id, bridge)
    if sets is None:
        return BridgeScores(pa.array([], pa.string()), np.zeros(0, np.float32), np.zeros(0, np.float32))
    weights = bridge.label_weights(query)
    cosines = bridge.label_vectors @ bridge.text_embedder.encode([query])[0]
    groups = len(sets.group_media)
    score = np.bincount(sets.group_of_row, sets.confidence * weights[sets.label_index], groups)
    mass = np.bincount(sets.group_of_row, sets.confidence, groups)
    weighted = np.bincount(sets.group_of_row, sets.confidence * cosines[sets.label_index], groups)
    cosine = weighted / np.maximum(mass, 1e-9)
    order = np.lexsort((score, sets.group_media))  # per media, its best frame last
    last = np.r_[sets.group_media[order][1:] != sets.group_media[order][:-1], True]
    best = order[last]
    return BridgeScores(
        sets.media.take(pa.array(sets.group_media[best])),
        score[best].astype(np.float32),
        cosine[best].astype(np.float32),
    )


def _label_sets(snapshot: Snapshot, model_id: str, bridge: LabelBridge) -> _LabelSets | None:
    key = (snapshot.location.root, snapshot.table_token(DERIVED.name), model_id)
    remembered = _MEMO.get(key)
    if remembered is not None:
        return remembered
    labels = snapshot.table(
        DERIVED.name,
        columns=["media_id", "ordinal", "label", "score"],
        filter=(pc.field("kind") == "label") & (pc.field("producer") == model_id),
    )
    if labels.num_rows == 0:
        return None
    position = pc.index_in(labels.column("label"), value_set=pa.array(bridge.labels))
    known = position.is_valid().to_numpy(zero_copy_only=False)  # labels of another label set count nothing
    score = np.nan_to_num(labels.column("score").to_numpy(zero_copy_only=False)).astype(np.float32)
    media = labels.column("media_id").combine_chunks().dictionary_encode()
    frame = labels.column("ordinal").to_numpy() // _LABEL_SET_STRIDE
    stride = int(frame.max()) + 1
    groups, group_of_row = np.unique(media.indices.to_numpy().astype(np.int64) * stride + frame, return_inverse=True)
    sets = _LabelSets(
        media=media.dictionary,
        group_of_row=group_of_row,
        group_media=groups // stride,
        label_index=pc.fill_null(position, 0).to_numpy(zero_copy_only=False).astype(np.int64),
        confidence=score * known,
    )
    _MEMO.put(key, sets)
    return sets
