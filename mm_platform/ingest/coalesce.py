"""What one tick of the event sensor decides: S3 events → batches, as a pure function (no IO, no Dagster).

Per key, the latest event wins (by S3's sequencer), and an event no later than the last one acted on for that
key is a duplicate or arrived late: it changes nothing. A key already inside an unfinished batch waits
(deferred, in the ledger) until that batch is over, so batches of one key never race. What is left becomes
at most ``ceil(n / max_objects)`` ingest batches plus one erasure batch per tick: a tick's events are one
time window, so batches (Dagster partitions) grow with time or volume, never with the number of files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from mm_platform.ids import media_id_for
from mm_platform.ingest.batches import DEFAULT_MAX_OBJECTS, ERASURE_BATCH, INGEST_BATCH, BatchKind, BatchManifest
from mm_platform.ingest.events import CREATED, ObjectEvent, later
from mm_platform.ingest.ledger import DiscoveryLedger, KeyMark, PendingBatch
from mm_platform.sources import DeletedMedia, ObjectInfo, parse_s3_uri

__all__ = ["EventDecision", "decide_events", "event_batches"]


@dataclass(frozen=True)
class EventDecision:
    """The batches to save and request, the ledger to save with them, and what was left out and why."""

    batches: list[BatchManifest]
    ledger: DiscoveryLedger
    stale: int = 0
    """Events no later than the last one acted on for their key (duplicates, late arrivals)."""
    foreign: int = 0
    """Events for another bucket or outside the source's prefix."""
    erased: int = 0
    """Created events for objects erased on request (never ingested again)."""
    deferred: int = 0
    """Keys waiting for their pending batch."""
    superseded: int = 0
    """Events replaced by a later event for the same key in this tick."""
    counts: dict[str, int] = field(default_factory=dict)


def decide_events(
    source_uri: str,
    events: Iterable[ObjectEvent],
    ledger: DiscoveryLedger,
    now: float,
    *,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    erased: frozenset[str] = frozenset(),
) -> EventDecision:
    """Turn this tick's events (plus those deferred earlier) into batches and the next ledger.

    ``erased``: media ids erased on request (GDPR); they are never ingested again.
    """
    bucket, prefix = parse_s3_uri(source_uri)
    latest: dict[str, ObjectEvent] = dict(ledger.deferred)
    foreign = superseded = 0
    for event in events:
        if event.bucket != bucket or not event.key.startswith(prefix):
            foreign += 1
            continue
        seen = latest.get(event.key)
        if seen is not None:
            superseded += 1
            latest[event.key] = later(seen, event)
        else:
            latest[event.key] = event
    busy = ledger.busy_keys()
    created: list[ObjectEvent] = []
    removed: list[ObjectEvent] = []
    deferred: dict[str, ObjectEvent] = {}
    stale = erased_count = 0
    for key, event in latest.items():
        mark = ledger.marks.get(key)
        if mark is not None and mark.order and event.order <= (mark.order, 0 if mark.kind == CREATED else 1):
            stale += 1
            continue
        if key in busy:
            deferred[key] = event
            continue
        uri = f"s3://{bucket}/{key}"
        if event.kind == CREATED and media_id_for(uri) in erased:
            erased_count += 1
            continue
        (created if event.kind == CREATED else removed).append(event)
    batches = event_batches(source_uri, created, removed, max_objects)
    marks = dict(ledger.marks)
    pending = dict(ledger.pending)
    for batch in batches:
        keys = tuple(o.key for o in batch.objects) or tuple(_key(d.uri, bucket) for d in batch.deleted)
        pending[batch.batch_id] = PendingBatch(batch.batch_id, batch.kind, keys, now)
        for key in keys:
            event = latest[key]
            marks[key] = KeyMark(event.order[0], event.kind, batch.batch_id, now)
    next_ledger = replace(ledger, marks=marks, pending=pending, deferred=deferred)
    return EventDecision(
        batches=batches,
        ledger=next_ledger,
        stale=stale,
        foreign=foreign,
        erased=erased_count,
        deferred=len(deferred),
        superseded=superseded,
        counts={"created": len(created), "removed": len(removed)},
    )


def event_batches(
    source_uri: str, created: Sequence[ObjectEvent], removed: Sequence[ObjectEvent], max_objects: int
) -> list[BatchManifest]:
    """Ingest batches of at most ``max_objects`` (key order) and one erasure batch for the removals.

    The batch id follows the events it holds (keys and sequencers), so saving the same events again after a
    crash writes the same manifest and Dagster's run key drops the repeated run request.
    """
    bucket, _ = parse_s3_uri(source_uri)
    ordered = sorted(created, key=lambda e: e.key)
    batches = []
    for start in range(0, len(ordered), max_objects):
        chunk = ordered[start : start + max_objects]
        objects = tuple(_object_info(source_uri, bucket, e) for e in chunk)
        batches.append(
            BatchManifest(
                batch_id=_event_batch_id(INGEST_BATCH, chunk), kind=INGEST_BATCH, source=source_uri, objects=objects
            )
        )
    if removed:
        gone = sorted(removed, key=lambda e: e.key)
        deleted = tuple(
            DeletedMedia(media_id=media_id_for(f"s3://{bucket}/{e.key}"), uri=f"s3://{bucket}/{e.key}") for e in gone
        )
        batches.append(
            BatchManifest(
                batch_id=_event_batch_id(ERASURE_BATCH, gone), kind=ERASURE_BATCH, source=source_uri, deleted=deleted
            )
        )
    return batches


def _event_batch_id(kind: BatchKind, events: Sequence[ObjectEvent]) -> str:
    digest = hashlib.sha256("\n".join(f"{e.key}\0{e.sequencer}\0{e.kind}" for e in events).encode()).hexdigest()
    times = [e.event_time for e in events if e.event_time is not None]
    stamp = (min(times) if times else datetime.fromtimestamp(0, UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{stamp}-{digest[:12]}"


def _object_info(source_uri: str, bucket: str, event: ObjectEvent) -> ObjectInfo:
    return ObjectInfo(
        uri=f"s3://{bucket}/{event.key}",
        source=source_uri,
        key=event.key,
        size_bytes=event.size_bytes or 0,
        etag=event.etag,
        version_id=event.version_id,
        last_modified=event.event_time or datetime.fromtimestamp(0, UTC),
    )


def _key(uri: str, bucket: str) -> str:
    return uri[len(f"s3://{bucket}/") :]
