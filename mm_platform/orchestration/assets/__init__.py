"""Dagster assets: thin adapters over the mm_platform core, one module per layer."""

from mm_platform.orchestration.assets.annotations import annotation_set, annotation_sets, staged_annotation_set
from mm_platform.orchestration.assets.partitions import ingest_batches
from mm_platform.orchestration.assets.pipeline import staged_batch
from mm_platform.orchestration.assets.publish import published_snapshot

all_assets = [staged_batch, published_snapshot, staged_annotation_set, annotation_set]

__all__ = ["all_assets", "annotation_sets", "ingest_batches"]
