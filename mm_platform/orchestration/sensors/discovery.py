"""Sensors that turn new, overwritten and deleted objects into batch partitions and run requests.

Thin: a tick is ``mm_platform.ingest.ticks`` (plain Python: paged listing or S3 events → batch manifests and
a ledger in the lake); this module hands Dagster the result. The Dagster cursor holds only where the paged
listing stands (a few scalars), whatever the number of objects.
"""

from functools import partial

import dagster as dg

from mm_platform.ingest.ledger import source_id
from mm_platform.ingest.reconcile import ReconcileCursor
from mm_platform.ingest.ticks import DiscoveryLimits, TickOutcome, listing_tick
from mm_platform.orchestration import LakeResource, MediaSourceResource
from mm_platform.orchestration.assets.partitions import ingest_batches
from mm_platform.orchestration.env import environment

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("media_pipeline"))
LIMITS = DiscoveryLimits()
SOURCE_TAG = "mm/source"
KIND_TAG = "mm/kind"


def failed_batches(instance: dg.DagsterInstance, source_uri: str, pending: set[str]) -> set[str]:
    """Pending batches whose run failed or was canceled (their keys are free again)."""
    if not pending:
        return set()
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
            tags={SOURCE_TAG: source_id(source_uri)},
        ),
        limit=1000,
    )
    return {r.dagster_run.tags.get("dagster/partition", "") for r in records} & pending


def sensor_result(
    context: dg.SensorEvaluationContext, source_uri: str, outcome: TickOutcome, cursor: str
) -> dg.SensorResult:
    """Every pending batch is requested on every tick: a request Dagster already has (same run key) is dropped,
    so a tick that died between saving batches and returning them loses nothing."""
    sid = source_id(source_uri)
    requests = [
        dg.RunRequest(partition_key=p.batch_id, run_key=p.batch_id, tags={SOURCE_TAG: sid, KIND_TAG: p.kind})
        for p in sorted(outcome.pending, key=lambda p: (p.created_at, p.batch_id))
    ]
    new = [b.batch_id for b in outcome.new_batches]
    context.log.info(f"{len(new)} new batch(es), {len(requests)} pending, from {source_uri}: {outcome.counts}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[ingest_batches.build_add_request([p.batch_id for p in outcome.pending])]
        if outcome.pending
        else [],
        cursor=cursor,
    )


def discover(
    context: dg.SensorEvaluationContext, lake: LakeResource, source: MediaSourceResource, uri: str
) -> dg.SensorResult:
    """One page of the listing (the next key range), diffed against the lake: the polling path."""
    the_lake = lake.get_lake()
    cursor = ReconcileCursor.from_json(context.cursor)
    with source.get_source(uri) as src:
        failed = partial(failed_batches, context.instance, src.uri)
        outcome = listing_tick(the_lake, src, cursor, limits=LIMITS, failed=failed)
    assert outcome.cursor is not None
    return sensor_result(context, src.uri, outcome, outcome.cursor.to_json())


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    description="New/changed/deleted objects in S3 (MM_S3_SOURCE) by paged listing; off when MM_SQS_QUEUE_URL "
    "is set (sqs_media_sensor then reads events and reconciles).",
)
def s3_media_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, s3_source: MediaSourceResource
) -> dg.SensorResult | dg.SkipReason:
    uri = s3_source.resolved_uri()
    if not uri or not uri.startswith("s3://"):
        return dg.SkipReason("no S3 source configured: set MM_S3_SOURCE=s3://bucket/prefix")
    if environment("MM_SQS_QUEUE_URL"):
        return dg.SkipReason("MM_SQS_QUEUE_URL is set: sqs_media_sensor reads the events and reconciles")
    return discover(context, lake, s3_source, uri)


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, description="New/changed/deleted files in the local folder.")
def folder_media_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, source: MediaSourceResource
) -> dg.SensorResult | dg.SkipReason:
    uri = source.resolved_uri()
    if not uri:
        return dg.SkipReason("no media source configured: set MM_SOURCE to a folder")
    if uri.startswith("s3://"):
        return dg.SkipReason("the source is S3: s3_media_sensor watches it")
    return discover(context, lake, source, uri)
