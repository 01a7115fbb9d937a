"""One bounded step of reconciliation: page the listing from the stored key, diff chunk by chunk, save batches.

A tick stops after ``max_keys`` listed keys or ``max_seconds`` (whichever first) at a chunk boundary, and the
next tick resumes after the last key it finished, so no tick's cost grows with the source. Memory holds one
chunk of listing, that chunk's media rows and the batches being filled; full batches are saved at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.erasure.table import ERASURES
from mm_platform.ingest.batches import DEFAULT_MAX_OBJECTS, BatchManifest, ManifestWriter
from mm_platform.ingest.ledger import DiscoveryLedger
from mm_platform.ingest.reconcile import MEDIA_COLUMNS, ListingChunk, ReconcileCursor, Reconciler
from mm_platform.lake import Lake, Snapshot
from mm_platform.sources import Source
from mm_platform.sources.listing import DEFAULT_CHUNK_KEYS, LISTING_SCHEMA
from mm_platform.tables import MEDIA

__all__ = ["PlannedBatch", "ScanBudget", "ScanOutcome", "erased_media", "plan_batches", "scan_step"]


@dataclass(frozen=True)
class ScanBudget:
    """How much one tick may list."""

    max_keys: int = 200_000
    """Listed keys per tick (S3: 200 LIST calls of 1,000)."""
    max_seconds: float = 20.0
    """Wall time per tick, well under Dagster's sensor evaluation timeout (60 s by default)."""
    chunk_keys: int = DEFAULT_CHUNK_KEYS
    """Keys diffed at once (memory)."""
    max_batches: int | None = None
    """Stop after the chunk that brings this many batches (backpressure: the pending batches' room)."""

    @classmethod
    def unbounded(cls, chunk_keys: int = DEFAULT_CHUNK_KEYS) -> ScanBudget:
        """A whole pass in one call (``mmp ingest``), still chunk by chunk."""
        return cls(max_keys=2**62, max_seconds=float("inf"), chunk_keys=chunk_keys)


@dataclass(frozen=True)
class PlannedBatch:
    """A saved batch, without its objects (the manifest in the lake has them)."""

    batch_id: str
    kind: str
    size: int


@dataclass(frozen=True)
class ScanOutcome:
    batches: list[PlannedBatch]
    cursor: ReconcileCursor
    ledger: DiscoveryLedger
    listed: int
    pass_finished: bool
    counts: dict[str, int] = field(default_factory=dict)


def scan_step(
    source: Source,
    snapshot: Snapshot,
    ledger: DiscoveryLedger,
    cursor: ReconcileCursor,
    save: Callable[[BatchManifest], None],
    *,
    budget: ScanBudget | None = None,
    now: float | None = None,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    erased: frozenset[str] = frozenset(),
    deletions: bool = True,
    remember: bool = True,
) -> ScanOutcome:
    """List from ``cursor.after`` within ``budget``; save each batch with ``save`` as soon as it is decided.

    ``remember=False``: a one-shot plan (no ledger is saved): batches are not kept as pending in memory."""
    budget = budget or ScanBudget()
    started = time.monotonic()
    when = time.time() if now is None else now
    reconciler = Reconciler(
        source.uri, ledger, when, max_objects=max_objects, erased=erased, deletions=deletions, remember=remember
    )
    planned: list[PlannedBatch] = []

    def keep(batches: list[BatchManifest]) -> None:
        for batch in batches:
            save(batch)
            planned.append(PlannedBatch(batch.batch_id, batch.kind, batch.size))

    lower = cursor.after
    finished = False
    for listed, exhausted in _chunks(source.list_tables(cursor.after, budget.chunk_keys)):
        upper = None if exhausted else listed.column("key")[-1].as_py()
        keep(reconciler.feed(ListingChunk(listed, _media_in_range(snapshot, source.uri, lower, upper), lower, upper)))
        lower = upper
        if exhausted:
            finished = True
            break
        if reconciler.listed >= budget.max_keys or time.monotonic() - started >= budget.max_seconds:
            break
        if budget.max_batches is not None and len(planned) + reconciler.waiting_batches() >= budget.max_batches:
            break
    keep(reconciler.finish())
    next_cursor = ReconcileCursor(
        after=None if finished else lower,
        passes=cursor.passes + (1 if finished else 0),
        ticks=cursor.ticks + 1,
    )
    return ScanOutcome(planned, next_cursor, reconciler.ledger, reconciler.listed, finished, dict(reconciler.counts))


def erased_media(snapshot: Snapshot) -> frozenset[str]:
    """The media ids erased in ``snapshot``: discovery never plans them again."""
    return frozenset(snapshot.table(ERASURES.name, columns=["media_id"]).column("media_id").to_pylist())


def plan_batches(
    lake: Lake,
    source: Source,
    *,
    ledger: DiscoveryLedger | None = None,
    cursor: ReconcileCursor | None = None,
    budget: ScanBudget | None = None,
    now: float | None = None,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    deletions: bool = True,
) -> ScanOutcome:
    """Diff ``source`` against the lake's latest snapshot and save the batches it needs as manifests in the lake.

    The one discovery of ``mmp ingest`` and of the listing sensor. Without a ``ledger`` it is a one-shot plan
    (``mmp ingest``): a whole pass by default, nothing kept as pending; a sensor passes its ledger, cursor and
    budget to list one bounded page and remember what it requested.
    """
    snapshot = lake.snapshot()
    with ManifestWriter(lake.location) as writer:
        return scan_step(
            source,
            snapshot,
            ledger if ledger is not None else DiscoveryLedger(),
            cursor or ReconcileCursor(),
            writer.save,
            budget=budget or ScanBudget.unbounded(),
            now=now,
            max_objects=max_objects,
            erased=erased_media(snapshot),
            deletions=deletions,
            remember=ledger is not None,
        )


def _chunks(tables: Iterator[pa.Table]) -> Iterator[tuple[pa.Table, bool]]:
    """The listing's tables, one ahead; the flag says the listing ended with this one (an empty listing is one
    empty table, so its deletions are still found)."""
    current = next(tables, None)
    if current is None:
        yield LISTING_SCHEMA.empty_table(), True
        return
    for following in tables:
        yield current, False
        current = following
    yield current, True


def _media_in_range(snapshot: Snapshot, source_uri: str, lower: str | None, upper: str | None) -> pa.Table:
    """The source's active media rows with key in ``(lower, upper]``: Parquet statistics skip the files of
    other key ranges (batches are key-ordered), so a chunk reads about its own rows."""
    where = (pc.field("source") == source_uri) & (pc.field("status") != "deleted")
    if lower is not None:
        where = where & (pc.field("key") > lower)
    if upper is not None:
        where = where & (pc.field("key") <= upper)
    return snapshot.table(MEDIA.name, columns=MEDIA_COLUMNS, filter=where)
