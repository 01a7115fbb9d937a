"""Process one ingest batch end to end: fetch → register → analyze (workers) → gate → embed → stage → publish.

Streaming: objects flow through in chunks, so memory is bounded whatever the batch size; decoding runs
in worker processes while the main process embeds, so decode overlaps compute. Contents that already
have current results in the published snapshot are copied, not recomputed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from time import perf_counter
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.annotations.schema import ANNOTATIONS
from mm_platform.catalog import CATALOG
from mm_platform.config import PipelineConfig
from mm_platform.embed import Embedder, embedder_for
from mm_platform.forkserver import start_forkserver
from mm_platform.ingest.analyze import ANALYZE_VERSION, Analysis, analyze
from mm_platform.ingest.batch_stage import BatchStage
from mm_platform.ingest.batch_state import BatchReport
from mm_platform.ingest.reuse import ModelRef
from mm_platform.ingest.scope import RESULT_TABLES, TABLES
from mm_platform.lake import AuditCheck, Lake, RowFilter
from mm_platform.log import get_logger, kv
from mm_platform.media import MediaRejected, ProbePool
from mm_platform.sources import DeletedMedia, ObjectInfo, Source
from mm_platform.tables import MEDIA

__all__ = ["IN_FLIGHT_PER_WORKER", "PROBE_PRELOAD", "TABLES", "BatchProcessor", "BatchReport", "start_probe_server"]

log = get_logger("mm_platform.ingest.process")
# A deleted object takes the annotations attached to it along, in the same publish (its media row stays,
# marked deleted; an annotation of nothing would dangle).
_DELETED_WITH_MEDIA = (*RESULT_TABLES, ANNOTATIONS.name)


IN_FLIGHT_PER_WORKER = 8
"""Files a batch holds per probe worker (sent, or answered and waiting for their turn in input order): enough
that while one worker spends a second on a 5120×2880 picture the others go on with small files instead of
idling behind it; a bound on memory whatever the batch size."""

PROBE_PRELOAD = ("mm_platform.ingest.analyze", "mm_platform.media.warm")
"""What the probe workers' fork server imports once (the decoders and extractors, and their one-time set-up)."""


def start_probe_server() -> None:
    """Start the probe workers' fork server before the first batch needs it (``mmp ingest`` does, while it
    loads Dagster): its imports then run on another core instead of delaying the batch's first decode."""
    start_forkserver(PROBE_PRELOAD)


class BatchProcessor:
    """Runs one batch through the pipeline; the embedders are built once and can be shared across batches."""

    def __init__(
        self, lake: Lake, config: PipelineConfig | None = None, embedders: dict[str, Embedder[Any]] | None = None
    ):
        self.lake = lake
        self.config = config or PipelineConfig()
        self.embedders = embedders or {
            "image": embedder_for(self.config.image_model, "image"),
            "text": embedder_for(self.config.text_model, "text"),
        }
        # The probe workers outlive a batch: starting them (and importing the decoders) is most of what a
        # small batch would otherwise cost. One batch at a time uses them.
        self._pool: ProbePool | None = None
        self._pool_lock = threading.Lock()

    def _probe_pool(self) -> ProbePool:
        if self._pool is None:
            self._pool = ProbePool(
                self.config.workers,
                self.config.timeout_s,
                probe_fn=cast(Any, analyze),
                max_in_flight=IN_FLIGHT_PER_WORKER * self.config.workers,
                preload=PROBE_PRELOAD,
            )
            weakref.finalize(self, self._pool.close)
        return self._pool

    def worker_pids(self) -> list[int]:
        """The probe workers' process ids (none before the first batch)."""
        return self._pool.worker_pids() if self._pool is not None else []

    def close(self) -> None:
        """Stop the probe workers (they are daemons: they also go when the process ends)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> BatchProcessor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def models(self) -> dict[str, ModelRef]:
        return {role: ModelRef(e.model_id, e.revision) for role, e in self.embedders.items()}

    def run(
        self,
        source: Source,
        objects: Sequence[ObjectInfo],
        partition: str,
        run_id: str,
        checks: Sequence[AuditCheck] = (),
        *,
        shadow: bool = False,
    ) -> BatchReport:
        """Stage the batch, audit it with ``checks`` (raising ``AuditFailedError``) and publish it."""
        report = self.stage(source, objects, partition, run_id, shadow=shadow)
        assert report.stage is not None
        started = perf_counter()
        results = self.lake.audit(self.lake.staged(report.stage), checks)
        audited = perf_counter()
        report.publish = self.lake.publish_stage(report.stage, results)
        report.timings_s.update({"audit": audited - started, "publish": perf_counter() - audited})
        log.info(
            "batch %s",
            kv(
                partition=partition,
                objects=report.objects,
                analyzed=report.analyzed,
                reused=report.reused,
                quarantined=report.quarantined,
                seq=report.publish.seq,
            ),
        )
        return report

    def stage(
        self, source: Source, objects: Sequence[ObjectInfo], partition: str, run_id: str, *, shadow: bool = False
    ) -> BatchReport:
        """Process the batch into an invisible stage (nothing is published).

        ``shadow``: only the configured models' vectors and labels are (re)built, beside other models' rows,
        which stay untouched (re-embedding with a new model without disturbing the active one).
        """
        started = perf_counter()
        calls_before = {role: e.calls for role, e in self.embedders.items()}
        items_before = {role: e.items_encoded for role, e in self.embedders.items()}
        with self._pool_lock:
            self._probe_pool().start()  # fresh workers boot while the stage opens its tables
        batch = BatchStage(self, objects, partition, run_id, shadow)
        try:
            with self._pool_lock:
                pool = self._probe_pool()
                for uri, outcome in pool.map(batch.to_analyze(source)):
                    batch.take(uri, cast(Analysis | MediaRejected, outcome))
                    if len(batch.pending) >= self.config.chunk_size:
                        batch.embed_and_flush(background=True)  # the workers keep decoding meanwhile
            batch.embed_and_flush()
            report = batch.finish()
        finally:
            batch.close()
        report.model_calls = {role: e.calls - calls_before[role] for role, e in self.embedders.items()}
        report.items_embedded = {role: e.items_encoded - items_before[role] for role, e in self.embedders.items()}
        report.timings_s = {"process": perf_counter() - started}
        return report

    def stage_erasure(self, deleted: Sequence[DeletedMedia], partition: str, run_id: str) -> BatchReport:
        """Stage the removal of deleted objects' rows from every table; their media rows say ``deleted``."""
        started = perf_counter()
        report = BatchReport(partition=partition, objects=len(deleted))
        ids = tuple(d.media_id for d in deleted)
        replace = (RowFilter("partition", (partition,)), RowFilter("media_id", ids))
        writer = self.lake.stage_writer(partition, run_id=run_id, code_version=self.code_version())
        media = self.lake.snapshot().table(MEDIA.name, filter=pc.field("media_id").isin(pa.array(ids, pa.string())))
        tombstones = [dict(row, status="deleted", partition=partition, run_id=run_id) for row in media.to_pylist()]
        writer.write(MEDIA.name, pa.Table.from_pylist(tombstones, schema=media.schema), replace)
        for name in _DELETED_WITH_MEDIA:
            writer.write(name, pa.Table.from_pylist([], schema=CATALOG[name].schema), replace)
        report.rows[MEDIA.name] = len(tombstones)
        report.stage = writer.finish()
        report.timings_s = {"process": perf_counter() - started}
        return report

    def code_version(self) -> str:
        models = self.models()
        return f"analyze={ANALYZE_VERSION};image={models['image'].revision};text={models['text'].revision}"
