"""Any sentence-transformers CLIP model: text and images embedded into one shared space.

No CLIP weights ship in a package here, so this is for deployments that have them (a hub name already in
the local Hugging Face cache, e.g. ``clip-ViT-B-32``, or a local directory). Loading never downloads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from mm_platform.embed.base import (
    DEFAULT_TORCH_THREADS,
    Embedder,
    Modality,
    hub_offline,
    l2_normalize,
    quiet_transformers,
    set_torch_threads,
)
from mm_platform.errors import ConfigError
from mm_platform.pictures import rgb_for_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["ClipImageView", "ClipTextView", "SentenceTransformerClipEmbedder"]

_ItemT = TypeVar("_ItemT")


class SentenceTransformerClipEmbedder:
    """One loaded CLIP model with two ``Embedder`` views (``.text`` and ``.images``) that share it."""

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str | None = None,
        torch_threads: int | None = DEFAULT_TORCH_THREADS,
    ) -> None:
        self.name_or_path = name_or_path
        """Hub name or local directory, also used as the ``model_id`` of both views."""
        self.text = ClipTextView(self, device=device, torch_threads=torch_threads)
        """Embedder view for strings (queries, captions)."""
        self.images = ClipImageView(self, device=self.text.device, torch_threads=torch_threads)
        """Embedder view for PIL images."""

    @property
    def device(self) -> str:
        return self.text.device

    @cached_property
    def model(self) -> SentenceTransformer:
        """The shared model (first use loads it, from local files only)."""
        from sentence_transformers import SentenceTransformer

        set_torch_threads(self.text.torch_threads)
        try:
            with hub_offline(), quiet_transformers():
                return SentenceTransformer(self.name_or_path, device=self.device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"CLIP model {self.name_or_path!r} could not be loaded offline: {exc}",
                hint="give a local sentence-transformers CLIP directory, or pre-fetch the model into the "
                "Hugging Face cache on a machine with network access",
            ) from exc

    @cached_property
    def dim(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ConfigError(f"CLIP model {self.name_or_path!r} does not report its embedding dimension")
        return int(dim)

    @cached_property
    def revision(self) -> str:
        """``sentence-transformers-<version>+<sha256 of the parameters, 12 hex>``.

        Hashing the loaded parameters works the same for a hub name and a local path, whatever the file
        layout (safetensors, bin, sharded).
        """
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"sentence-transformers-{version('sentence-transformers')}+{digest.hexdigest()[:12]}"

    def _encode(self, items: list[Any]) -> NDArray[np.float32]:
        vectors = self.model.encode(
            items,
            batch_size=max(len(items), 1),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return l2_normalize(np.asarray(vectors))

    def encode_text(self, texts: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
        """Unit vectors for strings, in the space ``encode_images`` uses."""
        return self.text.encode(texts, batch_size)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> NDArray[np.float32]:
        """Unit vectors for PIL images, in the space ``encode_text`` uses."""
        return self.images.encode(images, batch_size)


class _ClipView(Embedder[_ItemT]):
    def __init__(
        self, owner: SentenceTransformerClipEmbedder, *, device: str | None, torch_threads: int | None
    ) -> None:
        super().__init__(device=device, torch_threads=torch_threads)
        self.owner = owner

    @property
    def model_id(self) -> str:
        return self.owner.name_or_path

    @property
    def revision(self) -> str:
        return self.owner.revision

    @property
    def dim(self) -> int:
        return self.owner.dim


class ClipTextView(_ClipView[str]):
    """The text side of a CLIP model, as an ``Embedder[str]``."""

    @property
    def modality(self) -> Modality:
        return "text"

    def _encode_batch(self, items: Sequence[str]) -> NDArray[np.float32]:
        return self.owner._encode(list(items))


class ClipImageView(_ClipView[Image.Image]):
    """The image side of a CLIP model, as an ``Embedder[PIL.Image.Image]``."""

    @property
    def modality(self) -> Modality:
        return "image"

    def _encode_batch(self, items: Sequence[Image.Image]) -> NDArray[np.float32]:
        return self.owner._encode([rgb_for_model(image) for image in items])
