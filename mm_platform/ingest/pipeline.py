"""Ingest a source into the lake: list → register → publish, as one partition (an ingest batch)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from time import perf_counter

from mm_platform.ingest.register import register_objects
from mm_platform.lake import Lake, PublishResult, RowFilter, TableWrite
from mm_platform.sources import ObjectInfo, Source


@dataclass(frozen=True)
class IngestReport:
    """What one ingest published."""

    partition: str
    objects: int
    media_rows: int
    quarantined: int
    publish: PublishResult
    timings_s: dict[str, float] = field(default_factory=dict)


def batch_id_for(objects: list[ObjectInfo]) -> str:
    """A batch name that follows its content: the same object versions give the same batch."""
    digest = hashlib.sha256()
    for info in objects:
        digest.update(f"{info.uri}\0{info.etag}\0{info.version_id}\n".encode())
    return f"batch-{digest.hexdigest()[:12]}"


def ingest_objects(lake: Lake, source: Source, objects: list[ObjectInfo], partition: str, run_id: str) -> IngestReport:
    started = perf_counter()
    batch = register_objects(source, objects, partition, run_id)
    registered = perf_counter()
    ids = tuple(info.media_id for info in objects)
    # Rows replace earlier rows of the same objects (an overwrite) and of the same batch (a re-run).
    replace = (RowFilter("partition", (partition,)), RowFilter("media_id", ids))
    result = lake.publish(
        partition,
        {
            "media": TableWrite(batch.media_table(), replace=replace),
            "quarantine": TableWrite(batch.quarantine_table(), replace=replace),
        },
        run_id=run_id,
    )
    return IngestReport(
        partition=partition,
        objects=len(objects),
        media_rows=len(batch.media),
        quarantined=len(batch.quarantine),
        publish=result,
        timings_s={"register": registered - started, "publish": perf_counter() - registered},
    )


def ingest_source(lake: Lake, source: Source, run_id: str, partition: str | None = None) -> IngestReport:
    objects = list(source.list_objects())
    return ingest_objects(lake, source, objects, partition or batch_id_for(objects), run_id)
