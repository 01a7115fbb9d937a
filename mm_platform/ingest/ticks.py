"""What a discovery sensor does on one tick, in plain Python: the sensors in ``sensors/`` only wrap these.

Order of writes (each step durable before the next): batch manifests → the ledger (which lists them as
pending) → only then the SQS messages are deleted. A crash before the ledger re-delivers the messages and
rebuilds the same batches (their ids follow their events); a crash after it finds them pending, and every
pending batch is requested again on every tick (Dagster's run key makes the repeat a no-op).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mm_platform.ingest.batches import DEFAULT_MAX_OBJECTS, save_manifest
from mm_platform.ingest.coalesce import decide_events
from mm_platform.ingest.events import ObjectEvent, UnreadableMessage, parse_message
from mm_platform.ingest.ledger import PendingBatch, finished_batches, load_ledger, save_ledger
from mm_platform.ingest.reconcile import ReconcileCursor
from mm_platform.ingest.scan import PlannedBatch, ScanBudget, erased_media, plan_batches
from mm_platform.lake import Lake
from mm_platform.sources import Source
from mm_platform.sources.queue import S3EventQueue

__all__ = ["DiscoveryLimits", "TickOutcome", "event_tick", "listing_tick"]

log = logging.getLogger("mm_platform.ingest")

FailedRuns = Callable[[set[str]], set[str]]
"""Pending batch ids → those whose runs failed or were canceled."""


@dataclass(frozen=True)
class DiscoveryLimits:
    """Bounds on one tick and on the work in flight."""

    max_objects: int = DEFAULT_MAX_OBJECTS
    """Objects per batch."""
    max_pending: int = 32
    """Batches requested and not yet finished; at this many a tick takes no new work (messages stay in SQS,
    the listing stays where it is): the backpressure behind the run queue."""
    give_up_s: float = 6 * 3600.0
    """A pending batch not finished after this long is dropped (its run never ran); reconciliation finds its
    objects again."""
    max_messages: int = 10_000
    """Messages received per tick."""
    wait_s: float = 4.0
    """Long poll of the first receive: an upload during the first 4 s of an idle tick is taken at once
    instead of waiting for the next tick (a tick that finds messages returns without waiting)."""
    receive_s: float = 8.0
    """Time spent receiving per tick."""


@dataclass(frozen=True)
class TickOutcome:
    """What a tick did; ``pending`` are the batches to (re)request."""

    new_batches: list[PlannedBatch]
    pending: list[PendingBatch]
    counts: dict[str, int] = field(default_factory=dict)
    cursor: ReconcileCursor | None = None


def event_tick(
    lake: Lake,
    queue: S3EventQueue,
    source_uri: str,
    *,
    limits: DiscoveryLimits | None = None,
    failed: FailedRuns = lambda pending: set(),
    now: float | None = None,
) -> TickOutcome:
    """Receive S3 events, coalesce them into batches, save manifests and ledger, then delete the messages.

    ``failed``: given the pending batch ids, those whose runs failed (the sensor asks Dagster); their keys
    are free again.
    """
    limits = limits or DiscoveryLimits()
    now = time.time() if now is None else now
    location = lake.location
    loaded = load_ledger(location, source_uri)
    ledger = loaded.finish(finished_batches(location, loaded, now, limits.give_up_s) | failed(set(loaded.pending)))
    if len(ledger.pending) >= limits.max_pending:
        save_ledger(location, source_uri, ledger)  # finished batches leave the pending set
        return TickOutcome([], list(ledger.pending.values()), {"backpressure": 1})
    messages = queue.receive(max_messages=limits.max_messages, wait_s=limits.wait_s, budget_s=limits.receive_s)
    events: list[ObjectEvent] = []
    unreadable = 0
    for message in messages:
        try:
            events += parse_message(message.body)
        except UnreadableMessage as exc:
            unreadable += 1  # it will never parse: keeping it would only re-deliver it forever
            log.warning("dropping message id=%s reason=%s body=%.200s", message.message_id, exc, message.body)
    erased = erased_media(lake.snapshot())
    decision = decide_events(source_uri, events, ledger, now, max_objects=limits.max_objects, erased=erased)
    for batch in decision.batches:
        save_manifest(location, batch)
    next_ledger = decision.ledger.pruned(now)
    if next_ledger != loaded:  # an idle tick writes nothing
        save_ledger(location, source_uri, next_ledger)
    delete_failures = queue.delete(messages)
    counts = {
        "messages": len(messages),
        "events": len(events),
        "unreadable": unreadable,
        "stale": decision.stale,
        "superseded": decision.superseded,
        "deferred": decision.deferred,
        "foreign": decision.foreign,
        "erased": decision.erased,
        "delete_failures": delete_failures,
        **decision.counts,
    }
    planned = [PlannedBatch(b.batch_id, b.kind, len(b.objects) + len(b.deleted)) for b in decision.batches]
    return TickOutcome(planned, list(decision.ledger.pending.values()), counts)


def listing_tick(
    lake: Lake,
    source: Source,
    cursor: ReconcileCursor,
    *,
    limits: DiscoveryLimits | None = None,
    budget: ScanBudget | None = None,
    failed: FailedRuns = lambda pending: set(),
    now: float | None = None,
) -> TickOutcome:
    """One bounded page of reconciliation: new, changed and deleted objects in the next key range."""
    limits = limits or DiscoveryLimits()
    now = time.time() if now is None else now
    location = lake.location
    loaded = load_ledger(location, source.uri)
    ledger = loaded.finish(finished_batches(location, loaded, now, limits.give_up_s) | failed(set(loaded.pending)))
    room = limits.max_pending - len(ledger.pending)
    if room <= 0:
        save_ledger(location, source.uri, ledger)
        return TickOutcome([], list(ledger.pending.values()), {"backpressure": 1}, cursor)
    budget = budget or ScanBudget()
    if budget.max_batches is None or budget.max_batches > room:
        budget = ScanBudget(budget.max_keys, budget.max_seconds, budget.chunk_keys, room)
    outcome = plan_batches(
        lake, source, ledger=ledger, cursor=cursor, budget=budget, now=now, max_objects=limits.max_objects
    )
    next_ledger = outcome.ledger.pruned(now)
    if next_ledger != loaded:
        save_ledger(location, source.uri, next_ledger)
    counts = {"listed": outcome.listed, "pass_finished": int(outcome.pass_finished), **outcome.counts}
    return TickOutcome(outcome.batches, list(outcome.ledger.pending.values()), counts, outcome.cursor)
