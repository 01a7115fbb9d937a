"""A PyTorch ``Dataset`` over one snapshot's images, read from their sources exactly as the snapshot pinned them.

Training on "the lake as of snapshot N" is reproducible only if every image is the version the snapshot
registered: each item is fetched by its pinned VersionId/ETag and its SHA-256 must equal the media row's,
or :class:`~mm_platform.errors.SourceChangedError` is raised instead of training on other bytes.

This is the only module of the package that imports torch, so the rest of the core does not pay for it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import torch.utils.data
from PIL import Image, ImageOps

from mm_platform.errors import ConfigError
from mm_platform.lake import Lake, Snapshot
from mm_platform.snapshots._pinned import MEDIA_COLUMNS, PinnedObject, SourcePool, fetch_pinned
from mm_platform.sources import S3Settings
from mm_platform.tables import DERIVED, MEDIA, METADATA

__all__ = ["SnapshotImageDataset"]

LabelSource = Literal["model"] | None
Item = tuple[Any, dict[str, Any]]


class SnapshotImageDataset(torch.utils.data.Dataset[Item]):
    """The active images of a snapshot as ``(image, target)`` pairs.

    ``image`` is the picture decoded upright (EXIF orientation applied) in RGB, passed through
    ``transform`` when given. ``target`` holds ``media_id``, ``uri``, ``key``, ``content_sha256``, ``width``
    and ``height`` (as probed; 0 if unknown) and, with ``label_source="model"``, ``label`` and ``score``: the
    image model's top label (``derived`` rows of kind ``label``, rank 0, for these very bytes; ``""`` and
    NaN when an image has none). ``label_source=None`` gives annotation-free items.

    The index (a small Arrow table) is built once; sources are opened lazily in each process, so the dataset
    pickles and works in ``DataLoader`` workers. S3 settings default to the lake's own (its ``AWS_*``
    storage options).
    """

    def __init__(
        self,
        lake: Lake,
        seq: int | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        label_source: LabelSource = "model",
        label_model: str | None = None,
        s3_settings: S3Settings | None = None,
    ) -> None:
        if label_source not in ("model", None):
            raise ConfigError(f"unknown label_source {label_source!r}", hint='use "model" or None')
        snapshot = lake.snapshot(seq=seq)
        self.seq = snapshot.seq
        self.transform = transform
        self.label_source = label_source
        self._rows = _index(snapshot, label_source, label_model)
        self._sources = SourcePool(s3_settings or S3Settings.from_env(lake.location.storage_options))

    def __len__(self) -> int:
        return self._rows.num_rows

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        row = self._rows.slice(index, 1).to_pylist()[0]
        obj = PinnedObject.from_row(row)
        with fetch_pinned(self._sources.get(obj.source), obj, obj.sha256) as fetched:
            data = fetched.read_bytes()
        with Image.open(io.BytesIO(data)) as picture:
            image = ImageOps.exif_transpose(picture).convert("RGB")
        target: dict[str, Any] = {
            "media_id": obj.media_id,
            "uri": obj.uri,
            "key": obj.key,
            "content_sha256": obj.sha256,
            "width": int(row["width"] or 0),
            "height": int(row["height"] or 0),
        }
        if self.label_source == "model":
            target["label"] = row["label"] or ""
            target["score"] = float("nan") if row["score"] is None else float(row["score"])
        return (self.transform(image) if self.transform is not None else image), target

    def close(self) -> None:
        """Close the sources this process opened (S3 connections)."""
        self._sources.close()


def _index(snapshot: Snapshot, label_source: LabelSource, label_model: str | None) -> pa.Table:
    """One row per active image: its media columns, probed size and (optionally) top label, by URI."""
    media = snapshot.table(
        MEDIA.name,
        columns=MEDIA_COLUMNS,
        filter=(pc.field("modality") == "image") & (pc.field("status") == "active"),
    )
    metadata = snapshot.table(METADATA.name, columns=["media_id", "content_sha256", "width", "height"])
    # Joined on the content hash too: metadata of other bytes under the same id must not be attached.
    rows = media.join(metadata, keys=["media_id", "content_sha256"], join_type="left outer")
    if label_source == "model":
        rows = rows.join(
            _top_labels(snapshot, label_model), keys=["media_id", "content_sha256"], join_type="left outer"
        )
    return rows.sort_by([("uri", "ascending")]).combine_chunks()


def _top_labels(snapshot: Snapshot, label_model: str | None) -> pa.Table:
    """Rank-0 label rows (an image's own labels have ordinal = rank; keyframes' start at 100) of one model."""
    labels = snapshot.table(
        DERIVED.name,
        columns=["media_id", "source_content_sha256", "producer", "label", "score"],
        filter=(pc.field("kind") == "label") & (pc.field("ordinal") == 0),
    )
    producers = sorted(set(labels.column("producer").to_pylist()))
    if label_model is not None:
        labels = labels.filter(pc.field("producer") == label_model)
        if labels.num_rows == 0 and producers:
            raise ConfigError(f"no labels by {label_model!r} in this snapshot", hint=f"models: {', '.join(producers)}")
    elif len(producers) > 1:
        raise ConfigError(
            f"labels by several models in this snapshot: {', '.join(producers)}", hint="choose one with label_model="
        )
    labels = labels.rename_columns(["media_id", "content_sha256", "producer", "label", "score"])
    return labels.select(["media_id", "content_sha256", "label", "score"])
