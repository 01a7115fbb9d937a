"""Which model's vectors a search ranks, per kind of media: the one place that decides.

The choice is the snapshot's own: the `settings` row `active_model.<role>` that the first batch writes and
`mmp activate-model` switches in one publish (``mm_platform.reprocess.active``). While a new model is being
re-embedded beside the old one, its vectors exist but it is not active, so search keeps using the old,
complete model. Lakes without the setting fall back to the model that covers the most media.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake import Snapshot
from mm_platform.lake.publish_log import PublishLog
from mm_platform.lineage.history import publish_seq_by_partition
from mm_platform.reprocess.active import active_models as lake_active_models
from mm_platform.roles import IMAGE_MODALITIES, TEXT_MODALITIES
from mm_platform.search.memo import BoundedMemo
from mm_platform.tables import EMBEDDINGS, MEDIA

__all__ = ["ActiveModel", "ActiveModels", "active_models"]

_MEMO: BoundedMemo[tuple[str, int], ActiveModels] = BoundedMemo(16)


@dataclass(frozen=True)
class ActiveModel:
    """A model whose media-level vectors are searched."""

    model_id: str
    revision: str
    """The revision of its most recently published vectors."""
    vectors: int
    """Media-level vectors of this model in the snapshot (for the modalities it serves)."""
    last_seq: int
    """The latest publish that wrote some of them (0 when unknown)."""


@dataclass(frozen=True)
class ActiveModels:
    """The searched model per kind of media; None where the snapshot has no such vectors."""

    image: ActiveModel | None
    text: ActiveModel | None

    def to_dict(self) -> dict[str, object]:
        return {role: None if m is None else m.__dict__ for role, m in (("image", self.image), ("text", self.text))}


def active_models(snapshot: Snapshot) -> ActiveModels:
    """The active image and text models of ``snapshot`` (see the module docstring; the future hook is here).

    A published snapshot never changes, so the answer is remembered per (lake, seq) for this process.
    """
    key = (snapshot.location.root, snapshot.seq)
    remembered = _MEMO.get(key)
    if remembered is not None:
        return remembered
    models = _infer(snapshot)
    _MEMO.put(key, models)
    return models


def _infer(snapshot: Snapshot) -> ActiveModels:
    vectors = snapshot.table(
        EMBEDDINGS.name,
        columns=["media_id", "model_id", "model_revision", "partition"],
        filter=pc.field("subject_kind") == "media",
    )
    if vectors.num_rows == 0:
        return ActiveModels(None, None)
    media = snapshot.table(MEDIA.name, columns=["media_id", "modality"])
    joined = vectors.join(media, "media_id", join_type="inner")
    seqs = publish_seq_by_partition(PublishLog(snapshot.location).load(), snapshot.seq)
    partitions = pa.array(list(seqs), pa.string())
    position = pc.index_in(joined.column("partition"), value_set=partitions)
    seq = pc.take(pa.array(list(seqs.values()), pa.int64()), position)
    joined = joined.append_column("seq", pc.fill_null(seq, 0))
    chosen = lake_active_models(snapshot)
    return ActiveModels(
        _pick(joined, IMAGE_MODALITIES, chosen.get("image")), _pick(joined, TEXT_MODALITIES, chosen.get("text"))
    )


def _pick(rows: pa.Table, modalities: tuple[str, ...], model_id: str | None) -> ActiveModel | None:
    rows = rows.filter(pc.field("modality").isin(pa.array(modalities)))
    if model_id is not None:
        rows = rows.filter(pc.field("model_id") == model_id)
    if rows.num_rows == 0:
        return None
    per_model = rows.group_by("model_id").aggregate([("seq", "max"), ("media_id", "count")])
    best = max(per_model.to_pylist(), key=lambda r: (r["seq_max"], r["media_id_count"], r["model_id"]))
    latest = rows.filter(pc.field("model_id") == best["model_id"]).sort_by([("seq", "descending")])
    return ActiveModel(
        model_id=best["model_id"],
        revision=str(latest.column("model_revision")[0].as_py()),
        vectors=int(best["media_id_count"]),
        last_seq=int(best["seq_max"]),
    )
