"""Dagster assets: thin adapters over the mm_platform core, one module per layer."""

from assets.partitions import ingest_batches
from assets.pipeline import staged_batch
from assets.publish import published_snapshot

all_assets = [staged_batch, published_snapshot]

__all__ = ["all_assets", "ingest_batches"]
