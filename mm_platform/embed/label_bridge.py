"""Text -> image search without a joint text/image model, through the classifier's label names.

The image model gives each image its top-k ImageNet labels with confidences; a text model embeds the
query and the label names into one space. An image's score for a query is

    score(q, image) = sum over (label, p) in image's top-k of   p * w(q, label)

with ``p`` the classifier's softmax confidence and ``w`` one of

* ``"softmax"`` (default): ``w = softmax over all labels of cos(q, label) / temperature`` — sharpened, so
  only the labels closest to the query count and a confident but unrelated label adds almost nothing;
* ``"cosine"``: ``w = max(0, cos(q, label))`` — the plain form; MiniLM gives a query and an unrelated
  label a cosine of about 0.05–0.25 (median over the 1000 labels), so an image with one very confident
  label drifts up for every query.

On the 50 hand-written captions of ``benchmarks/label_bridge_eval.py`` softmax (temperature 0.05, not
tuned) measured better: top-1 0.30 vs 0.28, MRR 0.42 vs 0.37 (chosen on that same set; there is no
held-out one).

It can only find what the 1000 ImageNet classes can name: "a black square" or "the pygame logo" have no
label to land on. ``benchmarks/label_bridge_eval.py`` measures it on the shared media.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from mm_platform.embed.base import Embedder
from mm_platform.embed.imagenet_labels import IMAGENET_LABELS
from mm_platform.embed.onnx_export import cache_dir

__all__ = ["LabelBridge", "Weighting"]

Weighting = Literal["cosine", "softmax"]

# Label vectors per (text model, revision, label list): embedding 1000 names costs seconds on a CPU, and
# several bridges over the same cached embedder should pay it once per process.
_LABEL_VECTORS: dict[tuple[str, str, str], NDArray[np.float32]] = {}


def _cached_vectors(key: tuple[str, str, str], compute: Callable[[], NDArray[np.float32]]) -> NDArray[np.float32]:
    """``compute()`` stored as ``.npy`` under the cache folder, by model, revision and label-list hash."""
    model_id, revision, labels_key = key
    path = cache_dir() / "label_vectors" / f"{model_id.replace('/', '--')}-{revision}-{labels_key[:16]}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # not cached yet (or a partial file from a crash): compute it
        pass
    vectors = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, vectors, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:  # a read-only home: searching still works, it just recomputes next time
        pass
    return vectors


class LabelBridge:
    """Scores images for a text query from their predicted labels (formula in the module docstring)."""

    def __init__(
        self,
        text_embedder: Embedder[str],
        labels: Sequence[str] = IMAGENET_LABELS,
        *,
        weighting: Weighting = "softmax",
        temperature: float = 0.05,
        batch_size: int = 128,
    ) -> None:
        if text_embedder.modality != "text" or not text_embedder.normalized:
            raise ValueError("LabelBridge needs a normalised text embedder (dot product = cosine)")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.text_embedder = text_embedder
        self.labels = tuple(labels)
        self.weighting = weighting
        self.temperature = temperature
        self.batch_size = batch_size
        self._index = {label: i for i, label in enumerate(self.labels)}

    @property
    def label_vectors(self) -> NDArray[np.float32]:
        """Unit vectors of the label names, ``(len(labels), dim)``.

        Computed once per model revision and label list, then kept in the user cache (``onnx_export.
        cache_dir``): 1,000 names cost ~5 s on one CPU thread, which every ``mmp search`` would pay again.
        """
        labels_key = hashlib.sha256("\n".join(self.labels).encode()).hexdigest()
        key = (self.text_embedder.model_id, self.text_embedder.revision, labels_key)
        if key not in _LABEL_VECTORS:
            _LABEL_VECTORS[key] = _cached_vectors(key, lambda: self.text_embedder.encode(self.labels, self.batch_size))
        return _LABEL_VECTORS[key]

    def label_weights(self, query: str) -> NDArray[np.float32]:
        """``w(query, label)`` for every label, in label order."""
        query_vector = self.text_embedder.encode([query])[0]
        cosines = self.label_vectors @ query_vector
        if self.weighting == "cosine":
            return np.maximum(cosines, 0.0).astype(np.float32)
        logits = cosines / self.temperature
        weights = np.exp(logits - logits.max())
        return (weights / weights.sum()).astype(np.float32)

    def score(self, query: str, image_labels: Sequence[Sequence[tuple[str, float]]]) -> NDArray[np.float32]:
        """One score per image (higher is better) from each image's ``(label, confidence)`` pairs."""
        weights = self.label_weights(query)
        scores = np.zeros(len(image_labels), dtype=np.float32)
        for row, pairs in enumerate(image_labels):
            scores[row] = sum(confidence * float(weights[self._label_index(label)]) for label, confidence in pairs)
        return scores

    def query_label_weights(self, query: str, top: int = 10) -> list[tuple[str, float]]:
        """The ``top`` labels the query leans on most, with their weights — to explain a ranking."""
        weights = self.label_weights(query)
        order = np.argsort(-weights, kind="stable")[:top]
        return [(self.labels[i], float(weights[i])) for i in order]

    def _label_index(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise ValueError(f"label {label!r} is not one of this bridge's {len(self.labels)} labels") from None
