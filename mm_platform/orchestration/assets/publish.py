"""Publish an audited batch: one atomic publish across every table (write–audit–publish, step 3).

It redeems its own run's stage ticket: another run of the same batch can never have its stage published
here; if that other run published the batch first, this step is a no-op that names it.
"""

import dagster as dg

from mm_platform.ingest.steps import StagedBatch, publish_batch, stage_batch
from mm_platform.orchestration import LakeResource, MediaSourceResource, PipelineResource
from mm_platform.orchestration.assets.partitions import ingest_batches
from mm_platform.orchestration.results import publish_metadata, superseded_metadata


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
    run_id = context.run.run_id

    def restage() -> StagedBatch:  # only when a concurrent publish made the stage stale
        processor = pipeline.processor(the_lake)
        return stage_batch(the_lake, processor, source.get_source, context.partition_key, run_id, pipeline.checks())

    redemption = publish_batch(the_lake, context.partition_key, run_id, restage)
    if redemption.result is None:
        assert redemption.superseded_by is not None  # an ingest ticket always names a stage
        context.log.info(f"batch {context.partition_key} was published by run {redemption.superseded_by.run_id}")
        return dg.MaterializeResult(metadata=superseded_metadata(redemption.superseded_by))
    result = redemption.result
    browser = lake.resolved_browser_url()
    metadata = publish_metadata(result, the_lake.snapshot(result.seq), context.partition_key, browser_url=browser)
    return dg.MaterializeResult(metadata=metadata)
