"""Sensors that turn new, overwritten and deleted objects into batch partitions and run requests.

Thin: the decision is ``mm_platform.ingest.discovery.decide`` (a pure function of listing and cursor);
this module lists the source, stores batch manifests and hands Dagster the result.
"""

import os

import dagster as dg
import pyarrow.compute as pc

from assets.partitions import ingest_batches
from mm_platform.ingest.batches import save_manifest
from mm_platform.ingest.discovery import DiscoveryCursor, decide
from mm_platform.orchestration import LakeResource, MediaSourceResource

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("media_pipeline"))
RECONCILE_EVERY_TICKS = 10
MEDIA_COLUMNS = ["media_id", "uri", "etag", "version_id", "content_sha256", "status"]


def discover(
    context: dg.SensorEvaluationContext, lake: LakeResource, source: MediaSourceResource, uri: str
) -> dg.SensorResult:
    the_lake = lake.get_lake()
    cursor = DiscoveryCursor.from_json(context.cursor)
    snapshot = the_lake.snapshot()
    media = snapshot.table("media", columns=MEDIA_COLUMNS, filter=pc.field("status") != "deleted")
    erased = frozenset(snapshot.table("erasures", columns=["media_id"]).column("media_id").to_pylist())
    listing = source.get_source(uri).list_objects()
    reconcile = cursor.ticks % RECONCILE_EVERY_TICKS == 0
    batches, next_cursor = decide(uri, listing, media, cursor, reconcile=reconcile, erased=erased)
    for batch in batches:
        save_manifest(the_lake.location, batch)
    context.log.info(f"{len(batches)} new batch(es) from {uri} (reconcile={reconcile})")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=b.batch_id, run_key=b.batch_id) for b in batches],
        dynamic_partitions_requests=[ingest_batches.build_add_request([b.batch_id for b in batches])]
        if batches
        else [],
        cursor=next_cursor.to_json(),
    )


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, description="New/changed/deleted objects in S3 (MM_S3_SOURCE).")
def s3_media_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, s3_source: MediaSourceResource
) -> dg.SensorResult | dg.SkipReason:
    uri = s3_source.uri or os.environ.get("MM_S3_SOURCE")
    if not uri or not uri.startswith("s3://"):
        return dg.SkipReason("no S3 source configured: set MM_S3_SOURCE=s3://bucket/prefix")
    return discover(context, lake, s3_source, uri)


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, description="New/changed/deleted files in the local folder.")
def folder_media_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, source: MediaSourceResource
) -> dg.SensorResult | dg.SkipReason:
    uri = source.resolved_uri()
    if uri.startswith("s3://"):
        return dg.SkipReason("the source is S3: s3_media_sensor watches it")
    return discover(context, lake, source, uri)
