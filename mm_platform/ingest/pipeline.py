"""Ingest a source into the lake as one partition (an ingest batch): list → process → publish."""

from __future__ import annotations

import hashlib

from mm_platform.config import PipelineConfig
from mm_platform.ingest.process import BatchProcessor, BatchReport
from mm_platform.lake import Lake
from mm_platform.sources import ObjectInfo, Source


def batch_id_for(objects: list[ObjectInfo]) -> str:
    """A batch name that follows its content: the same object versions give the same batch."""
    digest = hashlib.sha256()
    for info in objects:
        digest.update(f"{info.uri}\0{info.etag}\0{info.version_id}\n".encode())
    return f"batch-{digest.hexdigest()[:12]}"


def ingest_source(
    lake: Lake,
    source: Source,
    run_id: str,
    partition: str | None = None,
    config: PipelineConfig | None = None,
    processor: BatchProcessor | None = None,
) -> BatchReport:
    """Process every object of ``source`` as one batch and publish it."""
    objects = list(source.list_objects())
    processor = processor or BatchProcessor(lake, config)
    return processor.run(source, objects, partition or batch_id_for(objects), run_id)
