"""Stage and audit one ingest batch: raw media → metadata → derived data → embeddings (nothing published yet).

One multi-asset, because one pass over the bytes produces all four tables (decode overlaps embedding);
each table is its own asset with its own blocking checks, so a failure names the layer it concerns.
"""

import os
import socket
from collections.abc import Iterator

import dagster as dg

from mm_platform.ingest.analyze import ANALYZE_VERSION
from mm_platform.ingest.steps import stage_batch
from mm_platform.orchestration import LakeResource, MediaSourceResource, PipelineResource
from mm_platform.orchestration.assets.checks import STAGED_CHECKS
from mm_platform.orchestration.assets.partitions import ingest_batches
from mm_platform.orchestration.resources import embedders_loaded
from mm_platform.orchestration.results import ASSET_TABLES, TABLE_ASSETS, check_result, staged_metadata
from mm_platform.quality import CHECK_TABLES
from mm_platform.reprocess import stale_report

GROUP = "media_pipeline"
# The deployment's model choice. It is part of the embeddings' code version, so changing a model here shows
# the embeddings (and what depends on them) as stale in the UI.
PIPELINE = PipelineResource()
STAGED_ASSETS = [
    dg.AssetSpec(
        "raw_media",
        group_name=GROUP,
        code_version="register-1",
        kinds={"deltalake", "s3"},
        description="Object versions registered by reference: size, ETag, VersionId, SHA-256, type.",
    ),
    dg.AssetSpec(
        "media_metadata",
        deps=["raw_media"],
        group_name=GROUP,
        code_version=f"analyze-{ANALYZE_VERSION}",
        kinds={"deltalake"},
        description="Metadata probed from content: EXIF/GPS, codecs, pages, text.",
    ),
    dg.AssetSpec(
        "derived_media",
        deps=["media_metadata"],
        group_name=GROUP,
        code_version=f"analyze-{ANALYZE_VERSION}",
        kinds={"deltalake"},
        description="Thumbnails, video keyframes, text chunks and model labels.",
    ),
    dg.AssetSpec(
        "embeddings",
        deps=["derived_media"],
        group_name=GROUP,
        code_version=f"image={PIPELINE.image_model};text={PIPELINE.text_model}",
        kinds={"deltalake", "pytorch"},
        description="Vectors per media and derived subject, per model.",
    ),
]


@dg.multi_asset(specs=STAGED_ASSETS, check_specs=STAGED_CHECKS, partitions_def=ingest_batches, can_subset=False)
def staged_batch(
    context: dg.AssetExecutionContext, lake: LakeResource, source: MediaSourceResource, pipeline: PipelineResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    the_lake = lake.get_lake(context)
    processor = pipeline.processor(the_lake)
    staged = stage_batch(
        the_lake,
        processor,
        source.get_source,
        context.partition_key,
        context.run.run_id,
        pipeline.checks(),
    )
    # What the configured models and extractors would redo across the whole lake (mmp stale).
    stale = [str(item) for item in stale_report(the_lake.snapshot(), processor.models())]
    for asset in ASSET_TABLES:
        metadata = staged_metadata(staged.report, asset)
        if asset == "embeddings":
            metadata["stale_in_lake"] = dg.MetadataValue.json(stale)
        if asset == "raw_media":  # where the step ran: a Celery worker process keeps its models across tasks
            metadata["process"] = f"{socket.gethostname()}:{os.getpid()}"
            metadata["embedders_loaded_in_process"] = embedders_loaded()
        yield dg.MaterializeResult(asset_key=asset, metadata=metadata)
    for result in staged.checks:
        yield check_result(result, TABLE_ASSETS[CHECK_TABLES[result.name]], context.partition_key)
