"""The only core package that imports Dagster: resources, partitions and result helpers for assets/sensors."""

from mm_platform.orchestration.resources import LakeResource, MediaSourceResource, PipelineResource

__all__ = ["LakeResource", "MediaSourceResource", "PipelineResource"]
