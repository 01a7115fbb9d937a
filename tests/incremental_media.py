"""Generated photos and a discover-then-process loop, for the incremental re-run test and its benchmark
(benchmarks/incremental.py): random-pixel JPEGs in a folder, and one run that processes what changed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from mm_platform.ingest.batches import load_manifest
from mm_platform.ingest.process import BatchProcessor
from mm_platform.ingest.scan import plan_batches
from mm_platform.lake import Lake
from mm_platform.sources import LocalFolderSource

SIZE = (240, 320, 3)  # a small photo; EfficientNet-Lite0 sees 224×224 either way


def make_images(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` random-pixel JPEGs named ``000000.jpg``… in ``folder`` (seeded: the same seed, the same bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, SIZE, dtype=np.uint8)).save(folder / f"{i:06d}.jpg", quality=85)


def ingest_changes(lake: Lake, processor: BatchProcessor, folder: Path, run: str) -> tuple[float, int, dict[str, int]]:
    """Discover what changed and process it as batches; returns (seconds, objects processed, model items)."""
    start = time.perf_counter()
    source = LocalFolderSource(folder)
    batches = plan_batches(lake, source, max_objects=1000, deletions=False).batches
    items = {"image": 0, "text": 0}
    processed = 0
    for i, batch in enumerate(batches):
        objects = load_manifest(lake.location, batch.batch_id).objects
        report = processor.run(source, list(objects), f"{run}-{i}", run)
        processed += report.analyzed
        for role, count in report.items_embedded.items():
            items[role] += count
    return time.perf_counter() - start, processed, items
