"""Re-derive only what is stale, batch by batch, through the same gates as an ingest.

A new model's vectors are built beside the old ones (shadow batches touch only that model's rows), so
every snapshot published meanwhile still serves the old, complete model; switching is `activate_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.ingest.process import BatchProcessor, BatchReport
from mm_platform.lake import AuditCheck, Lake
from mm_platform.reprocess.stale import media_needing_work
from mm_platform.sources import ObjectInfo, Source
from mm_platform.tables import MEDIA


@dataclass
class ReprocessReport:
    """Batches published by one reprocess run."""

    reanalyzed: int = 0
    reembedded: int = 0
    batches: list[BatchReport] = field(default_factory=list)


def _objects(media: pa.Table) -> dict[str, list[ObjectInfo]]:
    """The pinned object versions of media rows, grouped by source."""
    by_source: dict[str, list[ObjectInfo]] = {}
    for row in media.to_pylist():
        info = ObjectInfo(
            uri=row["uri"],
            source=row["source"],
            key=row["key"],
            size_bytes=row["size_bytes"],
            etag=row["etag"],
            version_id=row["version_id"],
            last_modified=row["last_modified"],
        )
        by_source.setdefault(row["source"], []).append(info)
    return by_source


def reprocess(
    lake: Lake,
    processor: BatchProcessor,
    source_for: Callable[[str], Source],
    *,
    run_id: str,
    checks: Sequence[AuditCheck] = (),
    max_objects: int = 500,
    limit_batches: int | None = None,
) -> ReprocessReport:
    """Publish batches until nothing is stale for the processor's configuration (or ``limit_batches``)."""
    report = ReprocessReport()
    snapshot = lake.snapshot()
    full, vectors_only = media_needing_work(snapshot, processor.models())
    for ids, shadow in ((full, False), (vectors_only, True)):
        if not ids:
            continue
        media = snapshot.table(MEDIA.name, filter=pc.field("media_id").isin(pa.array(ids, pa.string())))
        for source_uri, objects in _objects(media).items():
            source = source_for(source_uri)
            for start in range(0, len(objects), max_objects):
                if limit_batches is not None and len(report.batches) >= limit_batches:
                    return report
                chunk = objects[start : start + max_objects]
                kind = "reembed" if shadow else "reanalyze"
                partition = f"{kind}-{snapshot.seq}-{start // max_objects:04d}-{run_id[:8]}"
                batch = processor.run(source, chunk, partition, run_id, checks, shadow=shadow)
                report.batches.append(batch)
                if shadow:
                    report.reembedded += len(chunk)
                else:
                    report.reanalyzed += len(chunk)
    return report
