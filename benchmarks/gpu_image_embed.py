"""Image embedding throughput on a GPU: ``EfficientNetLite0Embedder`` vs the bare EfficientNet-Lite0 model.

Both sides take the same decoded PIL images (every decodable file under ``--images``, repeated up to
``--min-images``) in batches of ``--batch-size``, and each is timed from PIL image to vectors on the host:

- bare: ``preprocess_image`` on each image, ``np.stack``, ``net(batch.to(device)).cpu()``, serially;
- ours: ``EfficientNetLite0Embedder(device=...).encode_with_labels(images, batch_size=...)``.

One untimed warm-up batch each, then ``--rounds`` alternating rounds (bare, ours, bare, ours ...); each side
reports its median. For context it also measures the model alone on batches already stacked on the device,
single-threaded preprocessing alone, and ours once per ``--sweep-workers`` value of ``preprocess_workers``.
Prints one JSON line; writes it to ``$OUT/gpu_image_embed.json`` when ``OUT`` is set.

It runs on a host that has torch, numpy and pillow but none of the package's other dependencies: it imports
only ``mm_platform.embed.image`` (and the two plain modules that one imports), without running
``mm_platform/__init__.py``, which imports the lake (deltalake). The efficientnet wheels come from
``.whl/`` (see ``benchmarks/gpu_image_embed.sh``). Here: ``.venv/bin/python benchmarks/gpu_image_embed.py
--device cpu --min-images 64``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("deltalake", "dagster", "av", "pypdf")
"""Dependencies of the package that the GPU host lacks; importing the image embedder must not need them."""


def import_image_module() -> types.ModuleType:
    """``mm_platform.embed.image`` without executing the ``mm_platform`` and ``mm_platform.embed`` __init__s.

    Empty package modules pointing at the real folders stand in for them, so the submodule and its own
    imports (``embed.base``, ``embed.imagenet_labels``: numpy and the standard library) load normally.
    """
    for name, folder in (("mm_platform", REPO / "mm_platform"), ("mm_platform.embed", REPO / "mm_platform" / "embed")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    return importlib.import_module("mm_platform.embed.image")


def load_images(folder: Path, minimum: int) -> tuple[list[Any], int]:
    """Every file under ``folder`` that PIL decodes, fully loaded, repeated in order up to ``minimum``."""
    from PIL import Image

    decoded = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            with Image.open(path) as image:
                image.load()
                decoded.append(image.copy())
        except Exception:  # not an image, or one PIL cannot decode: skipped, as the brief says
            continue
    if not decoded:
        raise SystemExit(f"no decodable images under {folder}")
    images = list(decoded)
    while len(images) < minimum:
        images.extend(decoded[: minimum - len(images)])
    return images, len(decoded)


def timed_rounds(sides: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per side over ``rounds`` alternating rounds."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def card_name(torch: Any, device: str) -> str:
    if device.startswith("cuda"):
        return str(torch.cuda.get_device_name(torch.device(device)))
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    parser.add_argument(
        "--images",
        type=Path,
        default=REPO / ".gpu_media" / "images",
        help="folder of images (default: .gpu_media/images in the repository)",
    )
    parser.add_argument("--min-images", type=int, default=512, help="repeat the images up to this many")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per side")
    parser.add_argument(
        "--sweep-workers",
        default="0,4,16",
        help="also time ours once with each of these preprocess_workers (comma list; '' for none)",
    )
    args = parser.parse_args(argv)

    image_module = import_image_module()
    import numpy as np
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    images, distinct = load_images(args.images, args.min_images)
    n, bs, device = len(images), args.batch_size, args.device

    ours = image_module.EfficientNetLite0Embedder(device=device)
    ours.model  # noqa: B018 - load now: it applies the embedder's torch thread budget to the whole process

    # The bare model, loaded as mm_platform/embed/image.py loads it.
    bare_net = EfficientNet.from_name(ours.MODEL_ID)
    bare_net.load_state_dict(torch.load(ours.weights_path, map_location="cpu", weights_only=True), strict=True)
    bare_net = bare_net.eval().to(device)
    preprocess = image_module.preprocess_image

    def bare(items: Sequence[Any] = images) -> list[Any]:
        out = []
        for start in range(0, len(items), bs):
            batch = torch.from_numpy(np.stack([preprocess(image) for image in items[start : start + bs]]))
            with torch.inference_mode():
                out.append(bare_net(batch.to(device)).cpu())
        return out

    def ours_run(items: Sequence[Any] = images) -> tuple[Any, Any]:
        return ours.encode_with_labels(items, batch_size=bs)

    # Context: the model alone on batches already on the device, and preprocessing alone (one thread).
    stacked = [
        torch.from_numpy(np.stack([preprocess(image) for image in images[s : s + bs]])).to(device)
        for s in range(0, n, bs)
    ]

    def model_only() -> None:
        with torch.inference_mode():
            for batch in stacked:
                bare_net(batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def preprocess_only() -> None:
        for image in images:
            preprocess(image)

    bare(images[:bs])  # warm-up: one batch each (cuDNN algorithm choice, allocator, lazy init)
    ours_run(images[:bs])
    model_only()

    # Same inputs, same answers: top-1 classes of the two sides should agree.
    bare_top1 = torch.cat(bare()).argmax(dim=1).tolist()
    _, labels = ours_run()
    ours_top1 = [image_module.IMAGENET_LABELS.index(image_labels[0][0]) for image_labels in labels]
    agreement = sum(a == b for a, b in zip(bare_top1, ours_top1, strict=True)) / n

    seconds = timed_rounds({"bare": bare, "ours": ours_run}, args.rounds)
    context = timed_rounds({"model_only": model_only, "preprocess_only": preprocess_only}, 1)
    default_workers = ours.preprocess_workers
    by_workers = {}
    for workers in (int(w) for w in args.sweep_workers.split(",") if w.strip()):
        ours.preprocess_workers = workers
        by_workers[str(workers)] = round(n / timed_rounds({"ours": ours_run}, 1)["ours"], 1)
    ours.preprocess_workers = default_workers
    result = {
        "benchmark": "gpu_image_embed",
        "device": device,
        "card": card_name(torch, device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "images": n,
        "distinct_images": distinct,
        "batch_size": bs,
        "rounds": args.rounds,
        "bare_images_per_s": round(n / seconds["bare"], 1),
        "ours_images_per_s": round(n / seconds["ours"], 1),
        "ratio_ours_over_bare": round(seconds["bare"] / seconds["ours"], 3),
        "ours_preprocess_workers": default_workers,
        "ours_images_per_s_by_workers": by_workers,
        "model_only_images_per_s": round(n / context["model_only"], 1),
        "preprocess_1thread_images_per_s": round(n / context["preprocess_only"], 1),
        "top1_agreement": round(agreement, 4),
        "heavy_modules_imported": sorted(m for m in HEAVY_MODULES if m in sys.modules),
    }
    line = json.dumps(result)
    print(line)
    if out := os.environ.get("OUT"):
        Path(out, "gpu_image_embed.json").write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
