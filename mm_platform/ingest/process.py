"""Process one ingest batch end to end: fetch → register → analyze (workers) → embed → stage → publish.

Streaming: objects flow through in chunks, so memory is bounded whatever the batch size; decoding runs
in worker processes while the main process embeds, so decode overlaps compute. Contents that already
have current results in the published snapshot are copied, not recomputed.
"""

from __future__ import annotations

import threading
import weakref
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from mm_platform.config import PipelineConfig
from mm_platform.embed import Embedder, embedder_for
from mm_platform.errors import SourceError
from mm_platform.ids import derived_id_for
from mm_platform.ingest.analyze import ANALYZE_VERSION, Analysis, analyze
from mm_platform.ingest.register import fetch_all, media_row
from mm_platform.ingest.reuse import EMBEDDABLE, ModelRef, ReuseIndex, group_by_content, rekey
from mm_platform.ingest.rows import (
    ANALYZE_PRODUCER,
    Lineage,
    derived_row,
    embedding_row,
    label_rows,
    mean_vector,
    metadata_row,
    producer_key,
    quarantine_row,
)
from mm_platform.lake import AuditCheck, Lake, PublishResult, RowFilter
from mm_platform.lake.schemas import DATA_TABLES
from mm_platform.lake.snapshot import Snapshot
from mm_platform.lake.stage import Stage
from mm_platform.lake.stage_writer import StageWriter
from mm_platform.log import get_logger, kv
from mm_platform.media import MediaRejected, ProbePool
from mm_platform.sources import DeletedMedia, ObjectInfo, Source

log = get_logger("mm_platform.ingest.process")
TABLES = ("media", "metadata", "derived", "embeddings", "quarantine")
_RESULT_TABLES = ("metadata", "derived", "embeddings", "quarantine")
# A deleted object takes the annotations attached to it along, in the same publish (its media row stays,
# marked deleted; an annotation of nothing would dangle).
_DELETED_WITH_MEDIA = (*_RESULT_TABLES, "annotations")


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


@dataclass
class _Pending:
    """An analyzed object waiting for its embeddings."""

    media_id: str
    sha256: str
    analysis: Analysis


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
                max_in_flight=2 * self.config.workers + 2,
                preload=("mm_platform.ingest.analyze",),
            )
            weakref.finalize(self, self._pool.close)
        return self._pool

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
        results = self.lake.publisher.audit(self.lake.publisher.staged(report.stage), checks)
        audited = perf_counter()
        report.publish = self.lake.publisher.publish(report.stage, results)
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
        report = BatchReport(partition=partition, objects=len(objects))
        calls_before = {role: e.calls for role, e in self.embedders.items()}
        items_before = {role: e.items_encoded for role, e in self.embedders.items()}
        reuse = ReuseIndex.load(self.lake.snapshot(), self.models())
        writer = self.lake.publisher.stage_writer(partition, run_id=run_id, code_version=self.code_version())
        ids = tuple(o.media_id for o in objects)
        if shadow:
            models = [e.model_id for e in self.embedders.values()]
            own = tuple(producer_key(media_id, model) for media_id in ids for model in models)
            tables: tuple[str, ...] = ("derived", "embeddings")
            replace: tuple[RowFilter, ...] = (RowFilter("producer_key", own),)
        else:
            tables = TABLES
            replace = (RowFilter("partition", (partition,)), RowFilter("media_id", ids))
        for name in tables:
            writer.write(name, pa.Table.from_pylist([], schema=DATA_TABLES[name].schema), replace)
        out: dict[str, list[dict[str, object]]] = defaultdict(list)
        media_rows: list[dict[str, object]] = []  # written last, once quarantine decisions are known
        copies: dict[str, list[str]] = defaultdict(list)  # content hash -> media ids that copy its results
        pending: list[_Pending] = []
        progress = tqdm(total=len(objects), desc=f"batch {partition}", unit="obj", disable=not self.config.progress)

        def flush_rows() -> None:
            for name in TABLES:
                if out[name]:
                    writer.write(name, pa.Table.from_pylist(out[name], schema=_schema_for(name, out[name])))
                    report.rows[name] += len(out[name])
                    out[name].clear()

        analyzed_first: dict[str, str] = {}  # content hash -> media id analysed in this batch
        sha_by_media: dict[str, str] = {}

        def to_analyze() -> Iterator[tuple[str, bytes]]:
            for info, fetched in fetch_all(source, objects):
                if isinstance(fetched, SourceError):
                    lineage = Lineage("", "register", "1", run_id, partition)
                    out["quarantine"].append(
                        quarantine_row(
                            info.media_id, info.uri, None, "register", "unreadable", fetched.message, lineage
                        )
                    )
                    report.quarantined += 1
                    report.reasons["unreadable"] = report.reasons.get("unreadable", 0) + 1
                    progress.update()
                    continue
                with fetched:
                    row = media_row(info, fetched, partition, run_id)
                    media_rows.append(row)
                    sha = fetched.sha256
                    # (A shadow batch re-embeds duplicates separately: copying a keyframe vector needs the
                    # keyframe rows, which a shadow batch does not write.)
                    seen_in_batch = sha in analyzed_first and not shadow
                    if sha in reuse.complete or sha in reuse.quarantined or seen_in_batch:
                        copies[sha].append(info.media_id)
                        report.reused += 1
                        progress.update()
                        continue
                    analyzed_first[sha] = info.media_id
                    sha_by_media[info.media_id] = sha
                    data = fetched.read_bytes()
                yield info.uri, data

        by_uri = {o.uri: o for o in objects}
        media_status: dict[str, str] = {}
        with self._pool_lock:
            pool = self._probe_pool()
            for uri, outcome in pool.map(to_analyze()):
                info = by_uri[uri]
                sha = sha_by_media[info.media_id]
                if isinstance(outcome, MediaRejected):
                    lineage = Lineage(sha, ANALYZE_PRODUCER, ANALYZE_VERSION, run_id, partition)
                    out["quarantine"].append(
                        quarantine_row(
                            info.media_id, uri, sha, outcome.stage, outcome.reason.value, outcome.detail, lineage
                        )
                    )
                    media_status[info.media_id] = "quarantined"
                    report.quarantined += 1
                    report.reasons[outcome.reason.value] = report.reasons.get(outcome.reason.value, 0) + 1
                else:
                    analysis = cast(Analysis, outcome)
                    if not shadow:
                        out["metadata"].append(metadata_row(info.media_id, sha, analysis, run_id, partition))
                        lineage = Lineage(sha, ANALYZE_PRODUCER, ANALYZE_VERSION, run_id, partition)
                        out["derived"] += [derived_row(info.media_id, a, lineage) for a in analysis.derived]
                    pending.append(_Pending(info.media_id, sha, analysis))
                    report.analyzed += 1
                progress.update()
                if len(pending) >= self.config.chunk_size:
                    self._embed(pending, out, run_id, partition)
                    pending.clear()
                    flush_rows()
        self._embed(pending, out, run_id, partition)
        pending.clear()
        flush_rows()
        self._copy(reuse, writer, out, copies, analyzed_first, partition, media_status, report, shadow)
        for row in media_rows:
            row["status"] = media_status.get(str(row["media_id"]), row["status"])
        out["media"] = media_rows
        if shadow:  # registration, metadata and quarantine verdicts stay as published
            for name in ("media", "metadata", "quarantine"):
                out[name].clear()
        else:
            self._first_active_models(reuse.snapshot, writer, run_id, partition)
        flush_rows()
        progress.close()
        report.stage = writer.finish()
        report.model_calls = {role: e.calls - calls_before[role] for role, e in self.embedders.items()}
        report.items_embedded = {role: e.items_encoded - items_before[role] for role, e in self.embedders.items()}
        report.timings_s = {"process": perf_counter() - started}
        return report

    def _first_active_models(self, snapshot: Snapshot, writer: StageWriter, run_id: str, partition: str) -> None:
        """The first batch names the active model per role explicitly (later switches: activate_model)."""
        chosen = {r["key"] for r in snapshot.table("settings", columns=["key"]).to_pylist()}
        rows = [
            {
                "key": f"active_model.{role}",
                "value": embedder.model_id,
                "updated_at": datetime.now(UTC),
                "source_content_sha256": None,
                "producer": "pipeline",
                "producer_version": ANALYZE_VERSION,
                "run_id": run_id,
                "partition": partition,
            }
            for role, embedder in self.embedders.items()
            if f"active_model.{role}" not in chosen
        ]
        if rows:
            writer.write("settings", pa.Table.from_pylist(rows, schema=DATA_TABLES["settings"].schema))

    def stage_erasure(self, deleted: Sequence[DeletedMedia], partition: str, run_id: str) -> BatchReport:
        """Stage the removal of deleted objects' rows from every table; their media rows say ``deleted``."""
        started = perf_counter()
        report = BatchReport(partition=partition, objects=len(deleted))
        ids = tuple(d.media_id for d in deleted)
        replace = (RowFilter("partition", (partition,)), RowFilter("media_id", ids))
        writer = self.lake.publisher.stage_writer(partition, run_id=run_id, code_version=self.code_version())
        media = self.lake.snapshot().table("media", filter=pc.field("media_id").isin(pa.array(ids, pa.string())))
        tombstones = [dict(row, status="deleted", partition=partition, run_id=run_id) for row in media.to_pylist()]
        writer.write("media", pa.Table.from_pylist(tombstones, schema=media.schema), replace)
        for name in _DELETED_WITH_MEDIA:
            writer.write(name, pa.Table.from_pylist([], schema=DATA_TABLES[name].schema), replace)
        report.rows["media"] = len(tombstones)
        report.stage = writer.finish()
        report.timings_s = {"process": perf_counter() - started}
        return report

    def code_version(self) -> str:
        models = self.models()
        return f"analyze={ANALYZE_VERSION};image={models['image'].revision};text={models['text'].revision}"

    def _embed(
        self, pending: list[_Pending], out: dict[str, list[dict[str, object]]], run_id: str, partition: str
    ) -> None:
        """Embed the pending objects' images and texts in batches; write vectors and labels."""
        image_embedder, text_embedder = self.embedders["image"], self.embedders["text"]
        images = [(p, ordinal, picture) for p in pending for ordinal, picture in p.analysis.images]
        texts = [(p, ordinal, text) for p in pending for ordinal, text in p.analysis.texts]
        per_media: dict[str, list[np.ndarray]] = defaultdict(list)
        if images:
            pictures = [picture for _, _, picture in images]
            if hasattr(image_embedder, "encode_with_labels"):
                vectors, labels = image_embedder.encode_with_labels(pictures, top_k=self.config.label_top_k)
            else:
                vectors, labels = image_embedder.encode(pictures), [[] for _ in pictures]
            for (p, ordinal, _), vector, top in zip(images, vectors, labels, strict=True):
                lineage = Lineage(p.sha256, image_embedder.model_id, image_embedder.revision, run_id, partition)
                out["derived"] += label_rows(p.media_id, top, lineage, ordinal)
                if ordinal is not None:  # a keyframe: its own vector, subject = the keyframe's derived row
                    subject = _keyframe_id(p, ordinal)
                    out["embeddings"].append(
                        embedding_row(
                            subject,
                            "derived",
                            p.media_id,
                            vector,
                            image_embedder.model_id,
                            image_embedder.revision,
                            lineage,
                        )
                    )
                per_media[p.media_id].append(vector)
        if texts:
            vectors = text_embedder.encode([text for _, _, text in texts])
            for (p, ordinal, _), vector in zip(texts, vectors, strict=True):
                lineage = Lineage(p.sha256, text_embedder.model_id, text_embedder.revision, run_id, partition)
                subject = _chunk_id(p, ordinal)
                out["embeddings"].append(
                    embedding_row(
                        subject, "derived", p.media_id, vector, text_embedder.model_id, text_embedder.revision, lineage
                    )
                )
                per_media[p.media_id].append(vector)
        for p in pending:
            if p.media_id not in per_media:
                continue
            role = EMBEDDABLE[p.analysis.probed.modality]
            embedder = self.embedders[role]
            lineage = Lineage(p.sha256, embedder.model_id, embedder.revision, run_id, partition)
            vector = mean_vector(np.stack(per_media[p.media_id]))
            out["embeddings"].append(
                embedding_row(p.media_id, "media", p.media_id, vector, embedder.model_id, embedder.revision, lineage)
            )

    def _copy(
        self,
        reuse: ReuseIndex,
        writer: StageWriter,
        out: dict[str, list[dict[str, object]]],
        copies: dict[str, list[str]],
        analyzed_first: dict[str, str],
        partition: str,
        media_status: dict[str, str],
        report: BatchReport,
        shadow: bool = False,
    ) -> None:
        """Results for contents seen before (published, or earlier in this batch) copied under new ids."""
        if not copies:
            return
        published = group_by_content(reuse.rows_for(sha for sha in copies if sha not in analyzed_first))
        for sha, media_ids in copies.items():
            if sha in analyzed_first:
                first = pc.field("media_id") == analyzed_first[sha]
                source_rows = {
                    name: writer.read(name, first).to_pylist()
                    for name in (("derived", "embeddings") if shadow else _RESULT_TABLES)
                }
                if analyzed_first[sha] in media_status:
                    for media_id in media_ids:
                        media_status[media_id] = media_status[analyzed_first[sha]]
            else:
                source_rows = published.get(sha, {})
                if source_rows.get("quarantine") and not source_rows.get("metadata"):
                    for media_id in media_ids:
                        media_status[media_id] = "quarantined"
            models = {e.model_id for e in self.embedders.values()}
            for media_id in media_ids:
                for name, rows in rekey(source_rows, media_id, partition).items():
                    if shadow:  # only the configured models' rows; the rest of the media stays as published
                        rows = [r for r in rows if name in ("derived", "embeddings") and r["producer"] in models]
                    out[name] += rows
                    if name == "quarantine":
                        report.quarantined += len(rows)


def _keyframe_id(p: _Pending, ordinal: int) -> str:
    return derived_id_for(p.media_id, "keyframe", ordinal, ANALYZE_PRODUCER, ANALYZE_VERSION)


def _chunk_id(p: _Pending, ordinal: int) -> str:
    return derived_id_for(p.media_id, "text_chunk", ordinal, ANALYZE_PRODUCER, ANALYZE_VERSION)


def _schema_for(name: str, rows: list[dict[str, object]]) -> pa.Schema:
    """The table's schema plus any new scalar columns the rows bring (schema evolution)."""
    base = DATA_TABLES[name].schema
    extra: dict[str, pa.DataType] = {}
    for row in rows:
        for key, value in row.items():
            if key in base.names or key in extra or value is None:
                continue
            extra[key] = pa.array([value]).type
    return pa.schema([*base, *(pa.field(k, t) for k, t in extra.items())])
