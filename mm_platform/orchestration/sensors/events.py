"""The event-driven sensor: S3 event notifications from an SQS queue become batches within a tick.

Thin: ``mm_platform.ingest.ticks.event_tick`` receives, coalesces, saves manifests and the ledger, and only
then deletes the messages. Every ``RECONCILE_EVERY_TICKS`` ticks it also lists one bounded page of the
bucket (the safety net for lost events), resuming where the last page ended.
"""

import json
from functools import partial

import dagster as dg

from mm_platform.ingest.reconcile import ReconcileCursor
from mm_platform.ingest.scan import ScanBudget
from mm_platform.ingest.ticks import TickOutcome, event_tick, listing_tick
from mm_platform.orchestration import LakeResource, MediaSourceResource
from mm_platform.orchestration.queue import S3EventQueueResource
from mm_platform.orchestration.sensors.discovery import LIMITS, failed_batches, ingest_job, sensor_result

INTERVAL_S = 10
RECONCILE_EVERY_TICKS = 6
"""One page of reconciliation per minute at a 10 s interval."""
RECONCILE_BUDGET = ScanBudget(max_keys=50_000, max_seconds=10.0)


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=INTERVAL_S,
    description="S3 event notifications (MM_SQS_QUEUE_URL) for MM_S3_SOURCE → batches; reconciles by pages.",
)
def sqs_media_sensor(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    s3_source: MediaSourceResource,
    s3_events: S3EventQueueResource,
) -> dg.SensorResult | dg.SkipReason:
    uri = s3_source.resolved_uri()
    if not s3_events.resolved_url():
        return dg.SkipReason("no event queue configured: set MM_SQS_QUEUE_URL (see README: S3 → SQS)")
    if not uri or not uri.startswith("s3://"):
        return dg.SkipReason("no S3 source configured: set MM_S3_SOURCE=s3://bucket/prefix")
    the_lake = lake.get_lake()
    doc = json.loads(context.cursor) if context.cursor else {}
    ticks = int(doc.get("ticks", 0))
    reconcile = ReconcileCursor.from_json(doc.get("reconcile"))
    failed = partial(failed_batches, context.instance, uri)
    queue = s3_events.get_queue()
    try:
        outcome = event_tick(the_lake, queue, uri, limits=LIMITS, failed=failed)
    finally:
        queue.close()
    if ticks % RECONCILE_EVERY_TICKS == RECONCILE_EVERY_TICKS - 1:
        with s3_source.get_source(uri) as source:
            page = listing_tick(the_lake, source, reconcile, limits=LIMITS, budget=RECONCILE_BUDGET, failed=failed)
        assert page.cursor is not None
        reconcile = page.cursor
        outcome = TickOutcome(
            outcome.new_batches + page.new_batches,
            page.pending,
            {**outcome.counts, **{f"reconcile_{k}": v for k, v in page.counts.items()}},
        )
    cursor = json.dumps({"ticks": ticks + 1, "reconcile": reconcile.to_json()}, sort_keys=True)
    return sensor_result(context, uri, outcome, cursor)
