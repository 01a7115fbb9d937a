"""One batch on its way into a stage: fetch/register → (workers) analyze → embed → reuse-copy → write.

``BatchStage`` drives the steps over one :class:`~mm_platform.ingest.batch_state.BatchState`; what the batch
writes (everything, or only its models' rows when re-embedding in the shadow of the active model) is its
:class:`~mm_platform.ingest.scope.BatchScope`. The gate and the write are :mod:`mm_platform.ingest.write_rows`,
copying earlier results :mod:`mm_platform.ingest.reuse_copy`.

Every listed object ends with a ``media`` row (``active`` or ``quarantined``), and every quarantined one
with a ``quarantine`` row naming its own URI.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from tqdm import tqdm

from mm_platform.embed import Embedder
from mm_platform.errors import SourceError
from mm_platform.handoff import MediaFile
from mm_platform.ingest.analyze import ANALYZE_VERSION, Analysis
from mm_platform.ingest.batch_state import BatchReport, BatchState, Rows
from mm_platform.ingest.embedding import Pending, embed_pending
from mm_platform.ingest.register import fetch_all, media_row
from mm_platform.ingest.reuse import ReuseIndex
from mm_platform.ingest.reuse_copy import copy_reused
from mm_platform.ingest.rows import ANALYZE_PRODUCER, Lineage, derived_row, metadata_row, quarantine_row
from mm_platform.ingest.scope import BatchScope, ShadowReembedding
from mm_platform.ingest.write_rows import write_rows
from mm_platform.media import MediaRejected, QuarantineReason
from mm_platform.roles import active_model_key
from mm_platform.sources import ObjectInfo, Source
from mm_platform.tables import DERIVED, MEDIA, METADATA, QUARANTINE, SETTINGS

if TYPE_CHECKING:
    from mm_platform.ingest.process import BatchProcessor
    from mm_platform.lake import StageWriter

__all__ = ["BatchStage"]

# Long-lived, as the lake's other pools: a thread started per batch costs ~0.7 ms of a small re-run. Its tasks
# use the lake's own pools (table opens, re-writes), never this one, so a full pool cannot wait on itself.
_STAGE_OPENING = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mmp-stage-open")


class BatchStage:
    """Builds the stage of one batch; ``BatchProcessor.stage`` drives it."""

    def __init__(
        self, processor: BatchProcessor, objects: Sequence[ObjectInfo], partition: str, run_id: str, shadow: bool
    ) -> None:
        self.embedders: dict[str, Embedder[Any]] = processor.embedders
        self.config = processor.config
        scope = ShadowReembedding(e.model_id for e in self.embedders.values()) if shadow else BatchScope()
        # Largest first: a big file started last would keep one worker busy while the others sit idle at the
        # end of the batch; started first, the small ones fill in around it.
        largest_first = sorted(objects, key=lambda o: -o.size_bytes)
        self.state = BatchState(
            largest_first, partition, run_id, scope, BatchReport(partition=partition, objects=len(objects))
        )
        self.reuse = ReuseIndex.load(processor.lake.snapshot(), processor.models())
        # The stage's tables open, and the re-writes of rows it replaces start, beside the first files' fetching
        # and decoding: the workers would idle through it otherwise. Nothing is written before the first chunk.
        self._writer = _STAGE_OPENING.submit(self._open_writer, processor, partition, run_id)
        self._embedding: ThreadPoolExecutor | None = None  # the thread embedding a chunk (embed_and_flush)
        self._job: tuple[Future[None], Rows] | None = None
        self._progress = tqdm(
            total=len(objects), desc=f"batch {partition}", unit="obj", disable=not self.config.progress
        )

    @property
    def pending(self) -> list[Pending]:
        """Analysed objects waiting for the next embedding call."""
        return self.state.pending

    @property
    def writer(self) -> StageWriter:
        """The batch's stage (waits for it to open; an error opening it is raised here)."""
        return self._writer.result()

    def _open_writer(self, processor: BatchProcessor, partition: str, run_id: str) -> StageWriter:
        writer = processor.lake.stage_writer(partition, run_id=run_id, code_version=processor.code_version())
        state = self.state
        tables, replace = state.scope.replaced(tuple(o.media_id for o in state.objects), state.partition)
        writer.replace(tables, replace)
        return writer

    # --- fetch and register --------------------------------------------------------------------------

    def to_analyze(self, source: Source) -> Iterator[tuple[str, bytes | MediaFile]]:
        """Fetch and register each object; yield the ones whose content needs analysing (uri, bytes or file)."""
        state = self.state
        for info, fetched in fetch_all(source, state.objects):
            if isinstance(fetched, SourceError):
                self._refused(info, fetched)
                continue
            state.media_rows.append(media_row(info, fetched, state.partition, state.run_id))
            sha = fetched.sha256
            seen_in_batch = sha in state.analyzed_first and state.scope.copies_within_batch
            if sha in self.reuse.complete or sha in self.reuse.quarantined or seen_in_batch:
                fetched.close()
                state.copies[sha].append(info.media_id)
                state.report.reused += 1
                self._progress.update()
                continue
            state.analyzed_first[sha] = info.media_id
            state.sha_by_media[info.media_id] = sha
            state.in_workers[info.uri] = fetched
            yield info.uri, fetched.handoff()

    def _refused(self, info: ObjectInfo, error: SourceError) -> None:
        """An object the source would not give: a media row (lineage finds it) and a quarantine row."""
        state = self.state
        lineage = state.lineage(None, "register", "1")
        reason = QuarantineReason.UNREADABLE.value
        state.out[QUARANTINE.name].append(
            quarantine_row(info.media_id, info.uri, None, "register", reason, error.message, lineage)
        )
        state.media_rows.append(media_row(info, None, state.partition, state.run_id))
        state.report.count_quarantined(reason)
        self._progress.update()

    # --- analyze: what the workers found -------------------------------------------------------------

    def take(self, uri: str, outcome: Analysis | MediaRejected) -> None:
        """Record one worker's answer for ``uri``."""
        state = self.state
        fetched = state.in_workers.pop(uri, None)
        if fetched is not None:
            fetched.close()  # a spooled temp file can go now
        info = state.info_by_uri[uri]
        sha = state.sha_by_media[info.media_id]
        if isinstance(outcome, MediaRejected):
            lineage = state.lineage(sha, ANALYZE_PRODUCER, ANALYZE_VERSION)
            reason = outcome.reason.value
            state.out[QUARANTINE.name].append(
                quarantine_row(info.media_id, uri, sha, outcome.stage, reason, outcome.detail, lineage)
            )
            state.media_status[info.media_id] = "quarantined"
            state.report.count_quarantined(reason)
        else:
            analysis = cast(Analysis, outcome)
            if state.scope.writes_registration:
                metadata = metadata_row(info.media_id, sha, analysis, state.run_id, state.partition)
                state.out[METADATA.name].append(metadata)
                lineage = state.lineage(sha, ANALYZE_PRODUCER, ANALYZE_VERSION)
                state.out[DERIVED.name] += [derived_row(info.media_id, a, lineage) for a in analysis.derived]
            state.pending.append(Pending(info.media_id, sha, analysis))
            state.report.analyzed += 1
        self._progress.update()

    # --- embed, then write ---------------------------------------------------------------------------

    def embed_and_flush(self, *, background: bool = False) -> None:
        """Embed the pending objects, then gate and write every row gathered so far.

        ``background``: embed in a thread and return at once, so the caller goes on feeding the probe
        workers while the model runs (without it, the workers idle for the whole model call). The chunk
        takes its own rows along, and is gated and written, whole, by the next call: an object's metadata,
        derived rows and vectors are always gated together. One chunk embeds at a time.
        """
        state = self.state
        self._finish_background()
        if not background:
            if state.pending:
                embed_pending(self.embedders, state.pending, state.out, self._lineage, self.config.label_top_k)
                state.pending = []
            write_rows(state, self.writer, state.out)
            return
        rows, state.out = state.out, defaultdict(list)
        pending, state.pending = state.pending, []
        if self._embedding is None:
            self._embedding = ThreadPoolExecutor(1, thread_name_prefix="mmp-embed")
        job = self._embedding.submit(
            embed_pending, self.embedders, pending, rows, self._lineage, self.config.label_top_k
        )
        self._job = (job, rows)

    def _finish_background(self) -> None:
        if self._job is not None:
            job, rows = self._job
            self._job = None
            job.result()  # the model's exception, if any, surfaces here, in the caller's thread
            write_rows(self.state, self.writer, rows)

    def _lineage(self, pending: Pending, embedder: Embedder[Any]) -> Lineage:
        return self.state.lineage(pending.sha256, embedder.model_id, embedder.revision)

    # --- reuse-copy, media rows, the stage -----------------------------------------------------------

    def finish(self) -> BatchReport:
        """Copy reused results, write the media rows with their final status, and close the stage."""
        state = self.state
        self._finish_background()
        copy_reused(state, self.reuse, self.writer)
        for row in state.media_rows:
            row["status"] = state.media_status.get(str(row["media_id"]), row["status"])
        if state.scope.writes_registration:  # a shadow batch leaves registration and verdicts as published
            state.out[MEDIA.name] = state.media_rows
            self._first_active_models()
        write_rows(state, self.writer, state.out)
        self._progress.close()
        state.report.stage = self.writer.finish()
        return state.report

    def _first_active_models(self) -> None:
        """The first batch names the active model per role explicitly (later switches: activate_model)."""
        state = self.state
        chosen = {r["key"] for r in self.reuse.snapshot.table(SETTINGS.name, columns=["key"]).to_pylist()}
        state.out[SETTINGS.name] += [
            {
                "key": active_model_key(role),
                "value": embedder.model_id,
                "updated_at": datetime.now(UTC),
                "source_content_sha256": None,
                "producer": "pipeline",
                "producer_version": ANALYZE_VERSION,
                "run_id": state.run_id,
                "partition": state.partition,
            }
            for role, embedder in self.embedders.items()
            if active_model_key(role) not in chosen
        ]

    def close(self) -> None:
        """Release whatever is still held (temporary files of objects a worker never answered for)."""
        wait([self._writer])  # a batch that failed early leaves no thread opening its stage behind it
        if self._embedding is not None:
            self._embedding.shutdown(wait=True)  # an abandoned chunk's model call ends before its rows go
            self._embedding = None
        self._job = None
        for fetched in self.state.in_workers.values():
            fetched.close()
        self.state.in_workers.clear()
