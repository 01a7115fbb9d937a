"""Incremental re-runs (issue: reprocessing): a full run over N objects, then 1% of them changed.

Measures, in one process with the models loaded once: the full run, a no-op run (nothing changed: listing,
diff against the published snapshot, nothing to do) and the run after 1% of the objects changed — the median of
``--changes`` successive changes of different objects (3 by default: one ~0.3 s sample is too noisy to judge).
Goal: the 1% run costs ≤ 3% of the full run beyond the no-op run, with exactly 1% of the model calls (counted).
The image model is the product's default (EfficientNet-Lite0, from its package) or, with
``--model tiny-clip``, the tiny random CLIP of tests/tiny_clip.py: a near-free model, so the run's fixed
costs (discovery, batching, probe workers, publish) weigh the most — the worst case for this ratio.
Run: ``.venv/bin/python -m benchmarks.incremental [--n 1000] [--model efficientnet-lite0|tiny-clip]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.ingest.process import BatchProcessor
from tests.incremental_media import SIZE, ingest_changes, make_images
from tests.tiny_clip import build_tiny_clip


def run(n: int, model: str, changes: int = 3) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="mmp-incremental-"))
    try:
        folder = root / "media"
        make_images(folder, n)
        image_model = f"clip:{build_tiny_clip(root / 'clip')}" if model == "tiny-clip" else model
        config = PipelineConfig(image_model=image_model)
        lake = open_lake(str(root / "lake"))
        processor = BatchProcessor(lake, config)
        full, full_objects, full_items = ingest_changes(lake, processor, folder, "full")
        noop, _, noop_items = ingest_changes(lake, processor, folder, "noop")
        changed = max(1, n // 100)
        rng = np.random.default_rng(1)
        runs: list[float] = []
        for change in range(changes):  # one sample of ~0.3 s varies by ±30 % on a 2-vCPU machine
            for i in rng.choice(n, size=changed, replace=False):
                pixels = rng.integers(0, 255, SIZE, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=85)
            seconds, inc_objects, inc_items = ingest_changes(lake, processor, folder, f"one-percent-{change}")
            runs.append(seconds)
        incremental = statistics.median(runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "model": model,
        "objects": n,
        "changed": changed,
        "full_s": full,
        "noop_s": noop,
        "incremental_s": incremental,
        "incremental_runs_s": "/".join(f"{r:.2f}" for r in runs),
        "full_model_items": full_items["image"],
        "incremental_model_items": inc_items["image"],
        "noop_model_items": noop_items["image"],
        "incremental_objects": inc_objects,
        "full_objects": full_objects,
        "ratio": (incremental - noop) / full,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--model", default="efficientnet-lite0", help="efficientnet-lite0 (default) or tiny-clip")
    parser.add_argument("--changes", type=int, default=3, help="successive 1%% changes; the median is reported")
    args = parser.parse_args()
    result = run(args.n, args.model, args.changes)
    print("| benchmark | measurements | ratio |")
    print("|---|---|---|")
    details = ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items() if k != "ratio"
    )
    print(f"| 1% changed: (incremental − no-op) / full | {details} | {result['ratio']:.3f} |")


if __name__ == "__main__":
    main()
