"""Publish an audited batch: one atomic publish across every table (write–audit–publish, step 3)."""

import dagster as dg

from assets.partitions import ingest_batches
from mm_platform.ingest.steps import StagedBatch, publish_batch, stage_batch
from mm_platform.orchestration import LakeResource, MediaSourceResource, PipelineResource
from mm_platform.orchestration.results import publish_metadata


@dg.asset(
    deps=["raw_media", "media_metadata", "derived_media", "embeddings"],
    partitions_def=ingest_batches,
    group_name="media_pipeline",
    code_version="publish-1",
    kinds={"deltalake"},
    description="The batch's stage committed to every table in one publish; readers see all of it or none.",
)
def published_snapshot(
    context: dg.AssetExecutionContext, lake: LakeResource, source: MediaSourceResource, pipeline: PipelineResource
) -> dg.MaterializeResult:
    the_lake = lake.get_lake(context)

    def restage() -> StagedBatch:  # only when a concurrent publish made the stage stale
        processor = pipeline.processor(the_lake)
        run_id = context.run.run_id
        return stage_batch(the_lake, processor, source.get_source, context.partition_key, run_id, pipeline.checks())

    result = publish_batch(the_lake, context.partition_key, restage)
    snapshot = the_lake.snapshot(result.seq)
    browser = lake.resolved_browser_url()
    return dg.MaterializeResult(metadata=publish_metadata(result, snapshot, context.partition_key, browser_url=browser))
