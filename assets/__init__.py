"""The deployment layer's assets: the installed package's (``mm_platform.orchestration.assets``), one import
path for each asset. The code lives in the package so that ``mmp ingest`` works from any directory."""

from mm_platform.orchestration.assets import all_assets, annotation_sets, ingest_batches

__all__ = ["all_assets", "annotation_sets", "ingest_batches"]
