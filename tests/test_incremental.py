"""Incremental re-runs: after a full run over N objects, changing 1% of them makes the next run process
exactly those objects with exactly 1% of the model calls (counted), and a run with no change processes and
embeds nothing. (Wall-time ratios at a larger N are measured by benchmarks/incremental.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.ingest.process import BatchProcessor
from tests.incremental_media import ingest_changes, make_images
from tests.tiny_clip import build_tiny_clip


@pytest.mark.slow
def test_one_percent_changed_costs_one_percent_of_the_model_calls(tmp_path: Path) -> None:
    n = 200
    folder = tmp_path / "media"
    make_images(folder, n)
    lake = open_lake(str(tmp_path / "lake"))
    processor = BatchProcessor(lake, PipelineConfig(image_model=f"clip:{build_tiny_clip(tmp_path / 'clip')}"))

    _, processed, items = ingest_changes(lake, processor, folder, "full")
    assert processed == n and items["image"] == n

    _, processed, items = ingest_changes(lake, processor, folder, "noop")
    assert processed == 0 and items == {"image": 0, "text": 0}

    make_images(folder / "changed", 2, seed=7)
    for i, new in enumerate(sorted((folder / "changed").iterdir())):
        new.replace(folder / f"{i * 50:06d}.jpg")  # overwrite 2 of 200 objects (1%)
    (folder / "changed").rmdir()
    _, processed, items = ingest_changes(lake, processor, folder, "one-percent")
    assert processed == 2 and items["image"] == 2
    assert lake.snapshot().table("media").num_rows == n
