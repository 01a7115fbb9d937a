"""One batch on its way into a stage: fetch → register → (workers analyse) → gate → embed → write.

The state of a batch lives in one object so that each step is a method, not a closure: what was fetched
and is still in a worker's hands, the rows waiting for the next chunk's write, which contents are copied
from earlier results, and each object's final status.

Every listed object ends with a ``media`` row (``active`` or ``quarantined``), and every quarantined one
with a ``quarantine`` row naming its own URI. Rows that break a per-row rule are gated out here, before
they are written (:mod:`mm_platform.quality.row_gate`): their object is quarantined and the batch goes on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from mm_platform.catalog import CATALOG
from mm_platform.embed import Embedder
from mm_platform.errors import SourceError
from mm_platform.handoff import MediaFile
from mm_platform.ingest.analyze import ANALYZE_VERSION, Analysis
from mm_platform.ingest.embedding import Pending, embed_pending
from mm_platform.ingest.register import fetch_all, media_row
from mm_platform.ingest.reuse import ReuseIndex, group_by_content, rekey
from mm_platform.ingest.rows import (
    ANALYZE_PRODUCER,
    Lineage,
    derived_row,
    metadata_row,
    producer_key,
    quarantine_row,
)
from mm_platform.lake import PublishResult, RowFilter
from mm_platform.lake.stage import Stage
from mm_platform.media import MediaRejected, QuarantineReason
from mm_platform.quality.row_gate import VALIDATION_STAGE, failures_by_object
from mm_platform.sources import FetchedObject, ObjectInfo, Source

if TYPE_CHECKING:
    from mm_platform.ingest.process import BatchProcessor

__all__ = ["RESULT_TABLES", "TABLES", "BatchReport", "BatchStage"]

TABLES = ("media", "metadata", "derived", "embeddings", "quarantine")
RESULT_TABLES = ("metadata", "derived", "embeddings", "quarantine")
_GATED_TABLES = ("metadata", "derived", "embeddings")


@dataclass
class BatchReport:
    """What one batch did and cost."""

    partition: str
    objects: int = 0
    analyzed: int = 0
    reused: int = 0
    quarantined: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    model_calls: dict[str, int] = field(default_factory=dict)
    items_embedded: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    stage: Stage | None = None
    publish: PublishResult | None = None

    def count_quarantined(self, reason: str, count: int = 1) -> None:
        self.quarantined += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count


class BatchStage:
    """Builds the stage of one batch; ``BatchProcessor.stage`` drives it."""

    def __init__(
        self, processor: BatchProcessor, objects: Sequence[ObjectInfo], partition: str, run_id: str, shadow: bool
    ) -> None:
        self.embedders: dict[str, Embedder[Any]] = processor.embedders
        self.config = processor.config
        self.objects = objects
        self.partition = partition
        self.run_id = run_id
        self.shadow = shadow
        self.report = BatchReport(partition=partition, objects=len(objects))
        self.reuse = ReuseIndex.load(processor.lake.snapshot(), processor.models())
        self.writer = processor.lake.stage_writer(
            partition, run_id=run_id, code_version=processor.code_version()
        )
        self.out: dict[str, list[dict[str, object]]] = defaultdict(list)
        self.media_rows: list[dict[str, object]] = []  # written last, once every verdict is known
        self.media_status: dict[str, str] = {}
        self.copies: dict[str, list[str]] = defaultdict(list)  # content hash -> media ids that copy its results
        self.analyzed_first: dict[str, str] = {}  # content hash -> the media id analysed in this batch
        self.pending: list[Pending] = []
        self._sha_by_media: dict[str, str] = {}
        self._info_by_uri = {o.uri: o for o in objects}
        self._in_workers: dict[str, FetchedObject] = {}  # their bytes (or file) must live until answered
        self._embedding: ThreadPoolExecutor | None = None  # the thread embedding a chunk (embed_and_flush)
        self._job: tuple[Future[None], dict[str, list[dict[str, object]]]] | None = None
        self._progress = tqdm(
            total=len(objects), desc=f"batch {partition}", unit="obj", disable=not self.config.progress
        )
        self._replace_earlier_rows()

    def _replace_earlier_rows(self) -> None:
        ids = tuple(o.media_id for o in self.objects)
        if self.shadow:
            models = [e.model_id for e in self.embedders.values()]
            own = tuple(producer_key(media_id, model) for media_id in ids for model in models)
            tables: tuple[str, ...] = ("derived", "embeddings")
            replace: tuple[RowFilter, ...] = (RowFilter("producer_key", own),)
        else:
            tables = TABLES
            replace = (RowFilter("partition", (self.partition,)), RowFilter("media_id", ids))
        for name in tables:
            self.writer.write(name, pa.Table.from_pylist([], schema=CATALOG[name].schema), replace)

    # --- fetch and register --------------------------------------------------------------------------

    def to_analyze(self, source: Source) -> Iterator[tuple[str, bytes | MediaFile]]:
        """Fetch and register each object; yield the ones whose content needs analysing (uri, bytes or file)."""
        for info, fetched in fetch_all(source, self.objects):
            if isinstance(fetched, SourceError):
                self._refused(info, fetched)
                continue
            self.media_rows.append(media_row(info, fetched, self.partition, self.run_id))
            sha = fetched.sha256
            # (A shadow batch re-embeds duplicates separately: copying a keyframe vector needs the keyframe
            # rows, which a shadow batch does not write.)
            seen_in_batch = sha in self.analyzed_first and not self.shadow
            if sha in self.reuse.complete or sha in self.reuse.quarantined or seen_in_batch:
                fetched.close()
                self.copies[sha].append(info.media_id)
                self.report.reused += 1
                self._progress.update()
                continue
            self.analyzed_first[sha] = info.media_id
            self._sha_by_media[info.media_id] = sha
            self._in_workers[info.uri] = fetched
            yield info.uri, fetched.handoff()

    def _refused(self, info: ObjectInfo, error: SourceError) -> None:
        """An object the source would not give: a media row (lineage finds it) and a quarantine row."""
        lineage = Lineage(None, "register", "1", self.run_id, self.partition)
        reason = QuarantineReason.UNREADABLE.value
        self.out["quarantine"].append(
            quarantine_row(info.media_id, info.uri, None, "register", reason, error.message, lineage)
        )
        self.media_rows.append(media_row(info, None, self.partition, self.run_id))
        self.report.count_quarantined(reason)
        self._progress.update()

    # --- what the workers found ----------------------------------------------------------------------

    def take(self, uri: str, outcome: Analysis | MediaRejected) -> None:
        """Record one worker's answer for ``uri``."""
        fetched = self._in_workers.pop(uri, None)
        if fetched is not None:
            fetched.close()  # a spooled temp file can go now
        info = self._info_by_uri[uri]
        sha = self._sha_by_media[info.media_id]
        if isinstance(outcome, MediaRejected):
            lineage = Lineage(sha, ANALYZE_PRODUCER, ANALYZE_VERSION, self.run_id, self.partition)
            reason = outcome.reason.value
            self.out["quarantine"].append(
                quarantine_row(info.media_id, uri, sha, outcome.stage, reason, outcome.detail, lineage)
            )
            self.media_status[info.media_id] = "quarantined"
            self.report.count_quarantined(reason)
        else:
            analysis = cast(Analysis, outcome)
            if not self.shadow:
                self.out["metadata"].append(metadata_row(info.media_id, sha, analysis, self.run_id, self.partition))
                lineage = Lineage(sha, ANALYZE_PRODUCER, ANALYZE_VERSION, self.run_id, self.partition)
                self.out["derived"] += [derived_row(info.media_id, a, lineage) for a in analysis.derived]
            self.pending.append(Pending(info.media_id, sha, analysis))
            self.report.analyzed += 1
        self._progress.update()

    def embed_and_flush(self, *, background: bool = False) -> None:
        """Embed the pending objects, then gate and write every row gathered so far.

        ``background``: embed in a thread and return at once, so the caller goes on feeding the probe
        workers while the model runs (without it, the workers idle for the whole model call). The chunk
        takes its own rows along, and is gated and written, whole, by the next call: an object's metadata,
        derived rows and vectors are always gated together. One chunk embeds at a time.
        """
        self._finish_background()
        if not background:
            if self.pending:
                embed_pending(self.embedders, self.pending, self.out, self._lineage, self.config.label_top_k)
                self.pending = []
            self._flush()
            return
        rows, self.out = self.out, defaultdict(list)
        pending, self.pending = self.pending, []
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
            self._flush(rows)

    def _lineage(self, pending: Pending, embedder: Embedder[Any]) -> Lineage:
        return Lineage(pending.sha256, embedder.model_id, embedder.revision, self.run_id, self.partition)

    # --- gate and write ------------------------------------------------------------------------------

    def _flush(self, out: dict[str, list[dict[str, object]]] | None = None) -> None:
        out = self.out if out is None else out
        written = ("derived", "embeddings") if self.shadow else (*TABLES, "settings")
        tables = {
            name: pa.Table.from_pylist(rows, schema=_schema_for(name, rows))
            for name, rows in out.items()
            if rows and name in written  # a shadow batch leaves registration and verdicts as published
        }
        out.clear()
        failures = failures_by_object({name: tables[name] for name in _GATED_TABLES if name in tables})
        if failures:
            tables = self._quarantine_invalid(tables, failures)
        for name, rows in tables.items():
            if rows.num_rows:
                self.writer.write(name, rows)
                if name in self.report.rows:
                    self.report.rows[name] += rows.num_rows

    def _quarantine_invalid(self, tables: dict[str, pa.Table], failures: dict[str, Any]) -> dict[str, pa.Table]:
        """Drop the failing objects' rows; each object gets one quarantine row naming check, column, value."""
        failing = pa.array(sorted(failures), pa.string())
        kept = {
            name: rows.filter(pc.invert(pc.is_in(rows.column("media_id"), value_set=failing)))
            if name in _GATED_TABLES
            else rows
            for name, rows in tables.items()
        }
        uri_of = {o.media_id: o.uri for o in self.objects}
        quarantine = []
        sha_of = {str(row["media_id"]): row["content_sha256"] for row in self.media_rows}
        for media_id, failure in failures.items():
            sha = str(sha_of.get(media_id) or "")
            lineage = Lineage(sha or None, "validation", ANALYZE_VERSION, self.run_id, self.partition)
            reason = QuarantineReason.INVALID.value
            quarantine.append(
                quarantine_row(
                    media_id, uri_of[media_id], sha or None, VALIDATION_STAGE, reason, failure.detail(), lineage
                )
            )
            self.media_status[media_id] = "quarantined"
            self.report.count_quarantined(reason)
            if media_id in self._sha_by_media:  # it was counted as analysed
                self.report.analyzed -= 1
        rows = pa.Table.from_pylist(quarantine, schema=CATALOG["quarantine"].schema)
        kept["quarantine"] = pa.concat_tables([kept["quarantine"], rows]) if "quarantine" in kept else rows
        return kept

    # --- copies, media rows, the stage ---------------------------------------------------------------

    def finish(self) -> BatchReport:
        """Copy reused results, write the media rows with their final status, and close the stage."""
        self._finish_background()
        self._copy_reused()
        for row in self.media_rows:
            row["status"] = self.media_status.get(str(row["media_id"]), row["status"])
        if not self.shadow:  # a shadow batch leaves registration and verdicts as published
            self.out["media"] = self.media_rows
            self._first_active_models()
        self._flush()
        self._progress.close()
        self.report.stage = self.writer.finish()
        return self.report

    def _copy_reused(self) -> None:
        """Results for contents seen before (published, or earlier in this batch) copied under new ids."""
        if not self.copies:
            return
        published = group_by_content(self.reuse.rows_for(sha for sha in self.copies if sha not in self.analyzed_first))
        models = {e.model_id for e in self.embedders.values()}
        uri_of = {o.media_id: o.uri for o in self.objects}
        for sha, media_ids in self.copies.items():
            if sha in self.analyzed_first:
                first_id = self.analyzed_first[sha]
                first = pc.field("media_id") == first_id
                copied = ("derived", "embeddings") if self.shadow else RESULT_TABLES
                source_rows = {name: self.writer.read(name, first).to_pylist() for name in copied}
                if first_id in self.media_status:
                    for media_id in media_ids:
                        self.media_status[media_id] = self.media_status[first_id]
            else:
                source_rows = published.get(sha, {})
                if source_rows.get("quarantine") and not source_rows.get("metadata"):
                    for media_id in media_ids:
                        self.media_status[media_id] = "quarantined"
            for media_id in media_ids:
                for name, rows in rekey(source_rows, media_id, uri_of[media_id], self.partition).items():
                    if self.shadow:  # only the configured models' rows; the rest of the media stays as published
                        rows = [r for r in rows if name in ("derived", "embeddings") and r["producer"] in models]
                    self.out[name] += rows
                    if name == "quarantine":
                        self.report.quarantined += len(rows)

    def _first_active_models(self) -> None:
        """The first batch names the active model per role explicitly (later switches: activate_model)."""
        chosen = {r["key"] for r in self.reuse.snapshot.table("settings", columns=["key"]).to_pylist()}
        self.out["settings"] += [
            {
                "key": f"active_model.{role}",
                "value": embedder.model_id,
                "updated_at": datetime.now(UTC),
                "source_content_sha256": None,
                "producer": "pipeline",
                "producer_version": ANALYZE_VERSION,
                "run_id": self.run_id,
                "partition": self.partition,
            }
            for role, embedder in self.embedders.items()
            if f"active_model.{role}" not in chosen
        ]

    def close(self) -> None:
        """Release whatever is still held (temporary files of objects a worker never answered for)."""
        if self._embedding is not None:
            self._embedding.shutdown(wait=True)  # an abandoned chunk's model call ends before its rows go
            self._embedding = None
        self._job = None
        for fetched in self._in_workers.values():
            fetched.close()
        self._in_workers.clear()


def _schema_for(name: str, rows: list[dict[str, object]]) -> pa.Schema:
    """The table's schema plus any new scalar columns the rows bring (schema evolution)."""
    base = CATALOG[name].schema
    extra: dict[str, pa.DataType] = {}
    for row in rows:
        for key, value in row.items():
            if key in base.names or key in extra or value is None:
                continue
            extra[key] = pa.array([value]).type
    return pa.schema([*base, *(pa.field(k, t) for k, t in extra.items())])
